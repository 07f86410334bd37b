"""Part (e): drop the text encoder, freeze the image encoder, train one linear layer on image features.

Features are standardised with train statistics (buffers, so the probe is one self-contained module), then
``nn.Linear(D, K)``. The CLIP paper fits an L-BFGS logistic regression and sweeps the L2 strength on a
validation split (Radford et al., 2021, App. A.3); here AdamW with early stopping, and the weight decay is
chosen on validation from a small grid. Usage::

    probe, result, table = train_linear_probe((X_tr, y_tr), (X_val, y_val), num_classes=120)
"""
from __future__ import annotations

from dataclasses import replace
from collections.abc import Sequence

import torch
from torch import nn

from .feature_training import FeatureTrainConfig, Pair, TrainResult, train_on_features

LINEAR_PROBE_DEFAULTS = FeatureTrainConfig(lr=1e-3, weight_decay=1e-2, num_epochs=200, batch_size=256,
                                           patience=15)
WEIGHT_DECAYS: tuple[float, ...] = (1e-4, 1e-2, 1e-1, 1.0)


class LinearProbe(nn.Module):
    """(B, D) features -> (B, K) logits: standardise with train mean/std, then one affine layer."""

    def __init__(self, X_train: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", X_train.float().mean(0))
        self.register_buffer("std", X_train.float().std(0).clamp_min(1e-6) if len(X_train) > 1
                             else torch.ones(X_train.shape[1]))
        self.linear = nn.Linear(X_train.shape[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)


def train_linear_probe(train: Pair, val: Pair, num_classes: int,
                       config: FeatureTrainConfig = LINEAR_PROBE_DEFAULTS,
                       weight_decays: Sequence[float] = WEIGHT_DECAYS,
                       device: torch.device | str | None = None
                       ) -> tuple[LinearProbe, TrainResult, list[dict]]:
    """Train one probe per weight decay; keep the best on validation. Returns (probe, result, sweep rows)."""
    best = None
    rows = []
    for wd in weight_decays:
        with torch.random.fork_rng(devices=[]):  # same initial layer for every decay: only the decay differs
            torch.manual_seed(config.seed)
            probe = LinearProbe(train[0], num_classes)
        result = train_on_features(probe, train, val, replace(config, weight_decay=wd), device,
                                   desc=f"linear probe wd={wd:g}", keep_init=False)  # a random start
        rows.append({"weight_decay": wd, "val_acc": result.best_val_acc, "best_epoch": result.best_epoch,
                     "epochs_run": result.epochs_run})
        if best is None or result.best_val_acc > best[1].best_val_acc:
            best = (probe, result)
    return best[0], best[1], rows
