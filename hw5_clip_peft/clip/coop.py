"""CoOp: learnable context tokens in front of each class name, through the frozen CLIP text encoder.

Zhou, Yang, Loy and Liu, "Learning to Prompt for Vision-Language Models" (IJCV 2022): the prompt
``[SOT] v_1 ... v_M <class name> . [EOT]`` has M shared context vectors ``v`` (token-embedding width W)
that are trained by cross-entropy on image features while both encoders stay frozen. Here the image side
is the feature cache, so a step costs one text-encoder forward/backward over the K prompts.
Initialising ``v`` from the embeddings of "a photo of a" makes the model at step 0 *exactly* the zero-shot
classifier of the template "a photo of a {}." (checked in the tests).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .clip_models import ClipBundle
from .feature_training import FeatureTrainConfig, Pair, TrainResult, train_on_features

COOP_DEFAULTS = FeatureTrainConfig(lr=1e-3, weight_decay=0.0, num_epochs=100, batch_size=256, patience=10)
COOP_INIT = "a photo of a"


class CoOpClassifier(nn.Module):
    """(B, D) image features -> (B, K) logits against K prompts with ``n_ctx`` learned context vectors."""

    def __init__(self, bundle: ClipBundle, classnames: Sequence[str], n_ctx: int = 4,
                 init: str | None = COOP_INIT, seed: int = 0):
        super().__init__()
        model = bundle.model
        if getattr(model, "text_pool_type", "argmax") != "argmax" or not hasattr(model, "token_embedding"):
            raise TypeError(f"CoOp here needs an open_clip CLIP with the built-in text tower and argmax "
                            f"pooling; {bundle.spec.arch!r} has neither")
        placeholder = " ".join(["X"] * n_ctx)
        prompts = [f"{placeholder} {name}." for name in classnames]
        tokens = bundle.tokenizer(prompts).to(bundle.device)  # (K, L)
        with torch.no_grad():
            embedded = model.token_embedding(tokens).float()  # (K, L, W)
            if init:
                init_tokens = bundle.tokenizer([init]).to(bundle.device)
                n_init = int(init_tokens.argmax(-1)) - 1  # tokens between SOT and EOT
                if n_init != n_ctx:
                    raise ValueError(f"init {init!r} is {n_init} tokens; it must be n_ctx={n_ctx}")
                ctx = model.token_embedding(init_tokens)[0, 1:1 + n_ctx].float()
            else:
                generator = torch.Generator().manual_seed(seed)
                ctx = 0.02 * torch.randn(n_ctx, embedded.shape[-1], generator=generator).to(bundle.device)
        self.ctx = nn.Parameter(ctx.clone())  # (M, W): the only trainable tensor
        # The text mask is causal, so the EOT output never sees the padding after it: cut the sequence at the
        # longest prompt's EOT (exact, and ~7x less work than 77 positions).
        length = int(tokens.argmax(-1).max()) + 1
        self.register_buffer("tokens", tokens[:, :length])
        self.register_buffer("prefix", embedded[:, :1].clone())  # SOT
        self.register_buffer("suffix", embedded[:, 1 + n_ctx:length].clone())  # class name, '.', EOT
        self.register_buffer("logit_scale", torch.tensor(bundle.logit_scale))
        self._encoder = (model,)  # a tuple hides the frozen CLIP from state_dict(), parameters() and .to()

    def text_features(self) -> torch.Tensor:
        """(K, D) unit text embeddings of the current prompts (mirrors ``open_clip.CLIP.encode_text``)."""
        model = self._encoder[0]
        K = self.tokens.shape[0]
        x = torch.cat([self.prefix, self.ctx[None].expand(K, -1, -1), self.suffix], dim=1)  # (K, L, W)
        length = x.shape[1]
        x = x + model.positional_embedding[:length]
        mask = model.attn_mask[:length, :length] if model.attn_mask is not None else None
        x = model.transformer(x, attn_mask=mask)
        x = model.ln_final(x)
        x = x[torch.arange(K, device=x.device), self.tokens.argmax(-1)]  # EOT token has the largest id
        projection = model.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return F.normalize(x, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * F.normalize(x, dim=-1) @ self.text_features().T


def train_coop(bundle: ClipBundle, classnames: Sequence[str], train: Pair, val: Pair, n_ctx: int = 4,
               init: str | None = COOP_INIT, config: FeatureTrainConfig = COOP_DEFAULTS
               ) -> tuple[CoOpClassifier, TrainResult]:
    """Learn the context vectors on train features, early-stopped on validation."""
    head = CoOpClassifier(bundle, classnames, n_ctx, init, config.seed)
    return head, train_on_features(head, train, val, config, bundle.device, desc="CoOp")
