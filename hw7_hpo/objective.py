"""The one objective every searcher optimises: train a config with ``common.fit``, score it on validation.

The model is a small MLP. Why not a CNN: the homework compares *searchers*, and a fair comparison needs
hundreds of trainings per run on 2 CPU cores. An MLP trains an epoch of digits (1,149 images) in a few
milliseconds and an epoch of 10k MNIST images in well under a second, and its capacity knobs (width,
depth, dropout) are exactly the architectural hyperparameters of the search space. (A CNN would score a
little higher on MNIST but make each trial ~10x slower, i.e. fewer trials per budget.)

Epoch accounting: an outcome's ``epochs`` is every training epoch actually run, including the epochs of a
pruned trial and the partial epoch in which a trial diverged (counted as one). A searcher's budget is the
sum of these over its trials. Every trial uses the same seed (common random numbers: two configs differ only
by their hyperparameters, not by their initialisation or batch order), so a config's score is reproducible.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch
from torch import nn

from common import (
    NonFiniteLossError,
    Splits,
    TensorBatches,
    channel_stats,
    evaluate,
    fit,
    get_device,
    load_dataset,
)

# on_epoch(epoch, val_acc), called after every epoch (epochs count from 1). To stop the trial it raises
# (Optuna's hook raises optuna.TrialPruned), and the exception passes through common.fit and the objective
# unchanged: the caller that raised it records what it saw.
EpochHook = Callable[[int, float], None]
STATUSES = ("complete", "pruned", "diverged")
EVAL_BATCH = 2048


@dataclass(frozen=True)
class DataSpec:
    """Which data an objective trains on; picklable, so worker processes load the very same splits."""

    dataset: str = "digits"
    root: str | None = None  # None: $DLHW_DATA
    seed: int = 0
    val_fraction: float = 0.2
    limit_train: int | None = None
    limit_test: int | None = None

    def load(self) -> Splits:
        return load_dataset(self.dataset, root=self.root, val_fraction=self.val_fraction, seed=self.seed,
                            limit_train=self.limit_train, limit_test=self.limit_test)


class MLP(nn.Module):
    """(N, C, H, W) images -> (N, num_classes) logits through ``depth`` hidden layers of ``width`` units."""

    def __init__(self, in_features: int, num_classes: int, width: int, depth: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(width if depth else in_features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)


def build_model(config: Mapping, input_shape: tuple[int, ...], num_classes: int) -> MLP:
    """The MLP of ``config`` (``width``, ``depth``, ``dropout``) for inputs of ``input_shape`` (C, H, W)."""
    in_features = 1
    for s in input_shape:
        in_features *= int(s)
    return MLP(in_features, num_classes, int(config["width"]), int(config["depth"]), float(config["dropout"]))


def build_optimizer(config: Mapping, params) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with Nesterov momentum 0.9, from ``config``."""
    lr, wd = float(config["lr"]), float(config["weight_decay"])
    if config["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config['optimizer']!r}; use 'adamw' or 'sgd'.")


@dataclass(frozen=True)
class TrialOutcome:
    """What one training of one config produced.

    ``val_acc`` is the best validation accuracy over the epochs run (the weights of that epoch are the ones
    scored on test, so ``test_acc`` is never used for selection); ``None`` when the trial diverged.
    """

    status: str
    epochs: int
    val_curve: tuple[float, ...]
    val_acc: float | None
    best_epoch: int | None
    test_acc: float | None
    seconds: float
    error: str = ""


@dataclass
class Objective:
    """Trains configs on fixed splits; the tensors are moved to the device once.

    Args:
        splits: train/val/test tensors (``common.load_dataset``).
        max_epochs: epochs of a full trial (a searcher may ask for fewer at the end of its budget).
        seed: model initialisation and batch order of every trial.
    """

    splits: Splits = field(repr=False)
    max_epochs: int
    seed: int = 0
    device: torch.device | str | None = None
    normalize: tuple[torch.Tensor, torch.Tensor] = field(init=False, repr=False)

    def __post_init__(self):
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        self.device = get_device() if self.device is None else torch.device(self.device)
        self.normalize = channel_stats(self.splits.train.X)
        self._val = self._batches(self.splits.val, EVAL_BATCH, shuffle=False)
        self._test = self._batches(self.splits.test, EVAL_BATCH, shuffle=False)

    def _batches(self, split, batch_size: int, shuffle: bool) -> TensorBatches:
        return TensorBatches(split.X, split.y, batch_size, shuffle=shuffle, device=self.device,
                             seed=self.seed,
                             normalize=self.normalize)

    def __call__(self, config: Mapping, *, max_epochs: int | None = None,
                 on_epoch: EpochHook | None = None) -> TrialOutcome:
        """Train ``config`` for up to ``max_epochs`` (default ``self.max_epochs``) and score it: a
        ``complete`` or ``diverged`` outcome (an exception raised by ``on_epoch`` propagates)."""
        num_epochs = self.max_epochs if max_epochs is None else int(max_epochs)
        if num_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {num_epochs}")
        tic = time.perf_counter()
        torch.manual_seed(self.seed)  # same initialisation and dropout stream for every config
        model = build_model(config, self.splits.input_shape, len(self.splits.classes)).to(self.device)
        optimizer = build_optimizer(config, model.parameters())
        train = self._batches(self.splits.train, int(config["batch_size"]), shuffle=True)
        curve: list[float] = []

        def record(rec: dict) -> None:
            curve.append(float(rec["val_acc"]))
            if on_epoch is not None:
                on_epoch(int(rec["epoch"]), float(rec["val_acc"]))

        try:
            history = fit(model, optimizer, train, num_epochs=num_epochs, val_batches=self._val,
                          callbacks=[record], progress=False, device=self.device)
        except NonFiniteLossError as err:
            # the epoch that blew up was (partly) trained: it counts as one epoch of budget
            return TrialOutcome("diverged", len(curve) + 1, tuple(curve), None, None, None,
                                time.perf_counter() - tic, str(err))
        best = int(max(range(len(curve)), key=curve.__getitem__))
        model.load_state_dict(history.best_state)
        test_acc = float(evaluate(model, self._test, device=self.device)["acc"])
        return TrialOutcome("complete", len(curve), tuple(curve), curve[best], best + 1, test_acc,
                            time.perf_counter() - tic)
