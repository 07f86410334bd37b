"""Part (d): one trainable embedding per class, initialised from the zero-shot text embeddings.

The text encoder is gone after initialisation: the K class embeddings (K, D) are free parameters, scored
like CLIP scores text, ``logits = logit_scale * normalize(x) @ normalize(W).T``, at CLIP's own logit scale
(``exp(t)`` of the checkpoint, 100 for the LAION ConvNeXts), trained with cross-entropy on train features and
early-stopped on validation. At epoch 0 it *is* the zero-shot classifier, so any change is what the labels
taught it. Usage::

    head, result = train_class_embeddings((X_tr, y_tr), (X_val, y_val), classifier, bundle.logit_scale)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .feature_training import FeatureTrainConfig, Pair, TrainResult, train_on_features

# Small steps: the rows live on the unit sphere (entries ~ 1/sqrt(D)) and start at a good solution.
CLASS_EMBEDDING_DEFAULTS = FeatureTrainConfig(lr=5e-4, weight_decay=0.0, num_epochs=200, batch_size=256,
                                              patience=15)


class ClassEmbeddingClassifier(nn.Module):
    """(B, D) features -> (B, K) logits against K learned unit-norm class embeddings."""

    def __init__(self, init: torch.Tensor, logit_scale: float):
        super().__init__()
        self.weight = nn.Parameter(F.normalize(init.detach().float().clone(), dim=-1))  # (K, D)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


def train_class_embeddings(train: Pair, val: Pair, init: torch.Tensor, logit_scale: float,
                           config: FeatureTrainConfig = CLASS_EMBEDDING_DEFAULTS,
                           device: torch.device | str | None = None
                           ) -> tuple[ClassEmbeddingClassifier, TrainResult]:
    """Train class embeddings from ``init`` (K, D) (the zero-shot classifier); returns (head, result)."""
    head = ClassEmbeddingClassifier(init, logit_scale)
    result = train_on_features(head, train, val, config, device, desc="class embeddings")
    return head, result
