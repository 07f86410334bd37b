"""Training recipe shared by the hw2cnn.P2/P3 experiments: data as tensors, SGD + one-cycle, ``common.fit``.

``TrainConfig`` holds every default; :func:`quick_config` shrinks it for the quick profile (a small real MNIST
subset from ``$DLHW_DATA``, or scikit-learn's digits when ``$DLHW_DATA`` is unset). CIFAR-10 is never replaced
by other data: without it ``common.load_dataset`` raises ``DataNotFoundError`` naming the folder to provide.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (History, Splits, TensorBatches, TensorSplit, channel_stats, data_root, evaluate, fit,
                    get_device, load_dataset, random_crop_flip, seed_everything)

from .architectures import mobilenet_config, plain_config
from .flops import count_parameters, measure_flops
from .mobilenet import MobileNet, PlainCNN

MODELS = ("mobilenet", "plain")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the full-profile CIFAR-10 run (``python -m hw2_cnn.train_cifar``)."""

    model: str = "mobilenet"            # one of MODELS
    variant: str = "full"               # architecture table in architectures.py: full | quick
    dataset: str = "cifar10"
    num_epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1                     # peak of the one-cycle schedule (SGD, Nesterov momentum)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = True                # random crop (+ horizontal flip on CIFAR only: digits are chiral)
    limit_train: int | None = None
    limit_test: int | None = None
    expansion: int | None = None        # override t in every block after the first (Q6.2.3 sweep)
    se_reduction: int | None | str = "table"  # override r where the table has SE; None removes SE (Q6.3.2)
    seed: int = 0
    device: str | None = None
    checkpoint: str | None = None       # resume file for long runs
    progress: bool | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.num_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"num_epochs, batch_size and lr must be positive, got {self.num_epochs}, "
                             f"{self.batch_size}, {self.lr}")


def quick_dataset() -> str:
    """Real MNIST when ``$DLHW_DATA`` is set (a missing MNIST there is an error), else scikit-learn digits."""
    return "mnist" if data_root() is not None else "digits"


def quick_config(model: str = "mobilenet", **overrides) -> TrainConfig:
    """The quick-profile run: a few thousand MNIST images, a few CPU epochs, the ``quick`` architectures."""
    base = dict(model=model, variant="quick", dataset=quick_dataset(), num_epochs=4, batch_size=64, lr=0.2,
                weight_decay=5e-4, label_smoothing=0.0, limit_train=3000, limit_test=1000)
    base.update(overrides)
    return TrainConfig(**base)


MIN_SIDE = 16  # smaller images (digits are 8x8) are upsampled to 28x28 so the nets' strides still fit


def upsample_small(splits: Splits, size: int = 28) -> Splits:
    """Bilinearly resize every split to ``size`` x ``size`` when its images are smaller than ``MIN_SIDE``."""
    if splits.input_shape[-1] >= MIN_SIDE:
        return splits

    def resize(split: TensorSplit) -> TensorSplit:
        X = F.interpolate(split.X, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
        return TensorSplit(X, split.y, split.classes, split.name)

    return Splits(resize(splits.train), resize(splits.val), resize(splits.test))


def load_splits(config: TrainConfig) -> Splits:
    splits = load_dataset(config.dataset, limit_train=config.limit_train, limit_test=config.limit_test,
                          seed=config.seed)
    return upsample_small(splits)


def build_model(config: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    if config.model == "plain":
        return PlainCNN(plain_config(config.variant, in_channels, num_classes))
    return MobileNet(mobilenet_config(config.variant, in_channels, num_classes, config.expansion,
                                      config.se_reduction))


def make_batches(splits: Splits, config: TrainConfig, device: torch.device) -> dict[str, TensorBatches]:
    """Tensor-resident batches, normalised with the training split's channel statistics."""
    stats = channel_stats(splits.train.X)
    transform = (random_crop_flip(padding=2 if splits.input_shape[-1] < 32 else 4,
                                  flip=splits.train.name == "cifar10") if config.augment else None)
    return {"train": TensorBatches(splits.train.X, splits.train.y, config.batch_size, device=device,
                                   seed=config.seed, transform=transform, normalize=stats),
            "val": TensorBatches(splits.val.X, splits.val.y, 512, shuffle=False, device=device,
                                 normalize=stats),
            "test": TensorBatches(splits.test.X, splits.test.y, 512, shuffle=False, device=device,
                                  normalize=stats)}


@dataclass
class TrainResult:
    config: TrainConfig
    history: History
    test_acc: float
    test_loss: float
    params: int
    flops: int                      # per image, FlopCounterMode convention (2 per multiply-add)
    seconds: float                  # wall time of training (fit) only
    input_shape: tuple[int, ...]
    dataset_summary: str = ""
    extra: dict = field(default_factory=dict)

    def row(self, name: str | None = None) -> dict:
        return {"model": name or self.config.model, "dataset": self.config.dataset,
                "epochs": len(self.history),
                "test_acc": self.test_acc, "params": self.params, "MFLOPs": self.flops / 1e6,
                "train_s": self.seconds}


def train(config: TrainConfig, splits: Splits | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` with the shared recipe; test the last epoch's weights."""
    seed_everything(config.seed)
    splits = splits or load_splits(config)
    device = get_device(config.device)
    model = build_model(config, splits.input_shape[0], len(splits.classes))
    flops = measure_flops(model, splits.input_shape)
    batches = make_batches(splits, config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.num_epochs,
                                                    steps_per_epoch=len(batches["train"]), pct_start=0.25)
    loss_fn = partial(F.cross_entropy, label_smoothing=config.label_smoothing)
    tic = time.perf_counter()
    history = fit(model, optimizer, batches["train"], num_epochs=config.num_epochs,
                  val_batches=batches["val"],
                  loss_fn=loss_fn, scheduler=scheduler, scheduler_step="batch", device=device,
                  checkpoint_path=config.checkpoint, progress=config.progress,
                  desc=f"{config.model} on {config.dataset}")
    seconds = time.perf_counter() - tic
    test = evaluate(model, batches["test"], F.cross_entropy, device)
    result = TrainResult(config, history, test["acc"], test["loss"], count_parameters(model), flops, seconds,
                         splits.input_shape, splits.summary())
    result.extra["model"] = model.cpu()
    return result


# -------------------------------------------------------------------------- short runs of the P3 experiments
def normalize_images(X: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(N, C, H, W) -> per-channel standardised copy; ``stats`` from ``channel_stats`` of the train split."""
    mean, std = stats
    return (X - mean.view(1, -1, 1, 1).to(X)) / std.view(1, -1, 1, 1).to(X)


def train_adam(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, num_epochs: int, batch_size: int = 64,
               lr: float = 2e-3, seed: int = 0, loss_fn=F.cross_entropy, callbacks=(),
               device: torch.device | None = None) -> History:
    """Adam at a constant rate over shuffled ``TensorBatches`` of already-normalised ``X`` (any dtype: the
    model must match it), through ``common.fit``: the short, comparable runs of the P3 experiments.

    Mixed precision is off: these runs measure float32/float64 identities, which bf16 would blur on a GPU.
    """
    seed_everything(seed)
    batches = TensorBatches(X, y, batch_size, seed=seed, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return fit(model, optimizer, batches, num_epochs=num_epochs, loss_fn=loss_fn, callbacks=callbacks,
               device=device or X.device, amp=False, progress=False, desc=type(model).__name__)
