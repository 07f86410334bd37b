"""Training heads on cached CLIP features: one routine for parts (d), (e), CoOp and the few-shot curves.

Every head maps (B, D) image features to (B, K) logits. :func:`train_on_features` wraps ``common.fit``
(AdamW, tensor-resident batches) with early stopping on validation accuracy. With ``keep_init`` (heads that
start from the zero-shot classifier) the initial weights count as epoch 0 and are kept when no epoch beats
them on validation, so such a head never ends worse on val than zero-shot.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from common import EarlyStopping, TensorBatches, evaluate, fit

from .dogs import per_class_indices
from .zero_shot import top1_top5

Pair = tuple[torch.Tensor, torch.Tensor]  # (X (N, D), y (N,))


@dataclass(frozen=True)
class FeatureTrainConfig:
    """Defaults for a head trained on features (overridden per head and per profile)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    num_epochs: int = 100
    batch_size: int = 256
    patience: int = 10  # epochs without a new best validation accuracy before stopping
    seed: int = 0


@dataclass
class TrainResult:
    init_val_acc: float
    best_val_acc: float
    best_epoch: int  # 0 = the initial weights were kept
    epochs_run: int
    history: list[dict]


def train_on_features(model: torch.nn.Module, train: Pair, val: Pair, config: FeatureTrainConfig,
                      device: torch.device | str | None = None, desc: str = "head",
                      keep_init: bool = True) -> TrainResult:
    """Fit ``model`` on ``train`` features, early-stopped on ``val``; ``model`` ends with the best weights.

    ``keep_init=False`` (a randomly initialised head): the best *trained* epoch is kept even if the random
    start happened to score higher on validation.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device)
    train_batches = TensorBatches(train[0].float(), train[1], config.batch_size, shuffle=True,
                                  device=device, seed=config.seed)
    val_batches = TensorBatches(val[0].float(), val[1], 4096, shuffle=False, device=device)
    init_state = copy.deepcopy(model.state_dict())
    init_acc = evaluate(model, val_batches, device=device)["acc"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        history = fit(model, optimizer, train_batches, num_epochs=config.num_epochs, val_batches=val_batches,
                      callbacks=[EarlyStopping(config.patience)], progress=False, amp=False, desc=desc)
    best_acc = history.records[history.best_epoch]["val_acc"] if history.best_epoch is not None else init_acc
    if history.best_state is not None and (best_acc > init_acc or not keep_init):
        model.load_state_dict(history.best_state)
        best_epoch = history.best_epoch + 1
    else:
        model.load_state_dict(init_state)
        best_acc, best_epoch = init_acc, 0
    return TrainResult(init_acc, best_acc, best_epoch, len(history), history.records)


@torch.no_grad()
def head_accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
                  ) -> dict[str, float]:
    """``{"top1", "top5"}`` of a feature head (eval mode) on (N, D) features."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = torch.cat([model(X[i:i + batch_size].float().to(device)).float().cpu()
                        for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return top1_top5(logits, y)


def few_shot_indices(y: torch.Tensor, shots: int, seed: int = 0) -> torch.Tensor:
    """``shots`` random indices per class (all of a class when it has fewer), sorted."""
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    return per_class_indices(y, shots, seed)
