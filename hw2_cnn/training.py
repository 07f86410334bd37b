"""Training recipe shared by the hw2cnn.P2/P3 experiments: data as tensors, SGD + one-cycle, ``common.fit``.

``TrainConfig`` holds every default; :func:`quick_config` shrinks it for the quick profile (a small real MNIST
subset when a data root is given, else scikit-learn's digits). The data root is a parameter: entry points
resolve it once (``common.standard_settings`` or a notebook's first cell) and pass it here. CIFAR-10 is never
replaced by other data: without it ``common.load_dataset`` raises ``DataNotFoundError`` naming the folder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import (History, Splits, TensorBatches, TensorSplit, channel_stats, count_parameters, evaluate, fit,
                    get_device, load_checkpoint, load_dataset, random_crop_flip, seed_everything, settings_key)

from .architectures import VARIANTS, mobilenet_config, plain_config
from .flops import measure_flops
from .mobilenet import MobileNet, PlainCNN

MODELS = ("mobilenet", "plain")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the CPU CIFAR-10 run of ``python -m hw2_cnn.train_cifar --profile full``."""

    model: str = "mobilenet"            # one of MODELS
    variant: str = "cpu"                # architecture table in architectures.py: quick | cpu | full
    dataset: str = "cifar10"
    # 3 epochs: a 1-minute probe on the shared machine (1 thread) gave about 57 training images/s for the cpu
    # MobileNet, i.e. about 45 minutes for 3 x 49,000 images; the plain CNN ran about 2.7x faster per image
    num_epochs: int = 3
    batch_size: int = 256
    lr: float = 0.2                     # peak of the one-cycle schedule (SGD, Nesterov momentum)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = True                # random crop (+ horizontal flip on CIFAR only: digits are chiral)
    limit_train: int | None = None
    limit_test: int | None = None
    val_size: int | None = 1000         # the course's CIFAR-10 split: 49,000 train / 1,000 validation
    expansion: int | None = None        # override t in every block after the first (Q6.2.3 sweep)
    se_reduction: int | None | str = "table"  # override r where the table has SE; None removes SE (Q6.3.2)
    channels_last: bool = True          # NHWC activations: faster convolutions on CPU (oneDNN)
    seed: int = 0
    device: str | None = None
    checkpoint_dir: str | None = None   # one resume file per run, named by settings_key (see checkpoint_path)
    progress: bool | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.num_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"num_epochs, batch_size and lr must be positive, got {self.num_epochs}, "
                             f"{self.batch_size}, {self.lr}")

    def settings(self) -> dict:
        """Every setting that changes the result (not where files go, nor whether a bar is shown)."""
        out = dataclasses.asdict(self)
        for key in ("checkpoint_dir", "progress"):
            out.pop(key)
        out["device"] = get_device(self.device).type
        return out

    def checkpoint_path(self) -> Path | None:
        """``<checkpoint_dir>/<model>_<dataset>_<settings_key>.pt``: a run with any other setting (learning
        rate, epochs, batch size...) never resumes from or reports this run's state."""
        if self.checkpoint_dir is None:
            return None
        return Path(self.checkpoint_dir) / f"{self.model}_{self.dataset}_{settings_key(self.settings())}.pt"


def quick_dataset(data_root: str | Path | None) -> str:
    """Real MNIST when a data root is given (a missing MNIST there is an error), else scikit-learn digits."""
    return "mnist" if data_root is not None else "digits"


def quick_config(model: str = "mobilenet", data_root: str | Path | None = None, **overrides) -> TrainConfig:
    """The quick-profile run: a few thousand MNIST images, a few CPU epochs, the ``quick`` architectures."""
    base = dict(model=model, variant="quick", dataset=quick_dataset(data_root), num_epochs=4, batch_size=64,
                lr=0.2, weight_decay=5e-4, label_smoothing=0.0, limit_train=3000, limit_test=1000, val_size=None,
                channels_last=False)
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


def load_splits(config: TrainConfig, data_root: str | Path | None = None) -> Splits:
    """The config's dataset from ``data_root`` (uint8 images: ``TensorBatches`` scales each batch)."""
    splits = load_dataset(config.dataset, root=data_root, limit_train=config.limit_train,
                          limit_test=config.limit_test, seed=config.seed, val_size=config.val_size,
                          uint8=config.dataset in ("cifar10", "mnist", "fashion_mnist"))
    return upsample_small(splits)


def build_model(config: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    if config.model == "plain":
        return PlainCNN(plain_config(config.variant, in_channels, num_classes))
    return MobileNet(mobilenet_config(config.variant, in_channels, num_classes, config.expansion,
                                      config.se_reduction))


class ChannelsLast:
    """Wrap batches so every input is NHWC in memory (the model's weights are converted to match)."""

    def __init__(self, batches: TensorBatches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for xb, yb in self.batches:
            yield xb.contiguous(memory_format=torch.channels_last), yb

    def state_dict(self) -> dict:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batches.load_state_dict(state)


def make_batches(splits: Splits, config: TrainConfig, device: torch.device) -> dict:
    """Tensor-resident batches, normalised with the training split's channel statistics."""
    stats = channel_stats(splits.train.X)
    transform = (random_crop_flip(padding=2 if splits.input_shape[-1] < 32 else 4,
                                  flip=splits.train.name == "cifar10") if config.augment else None)
    out = {"train": TensorBatches(splits.train.X, splits.train.y, config.batch_size, device=device,
                                  seed=config.seed, transform=transform, normalize=stats),
           "val": TensorBatches(splits.val.X, splits.val.y, 500, shuffle=False, device=device, normalize=stats),
           "test": TensorBatches(splits.test.X, splits.test.y, 500, shuffle=False, device=device,
                                 normalize=stats)}
    return {k: ChannelsLast(v) for k, v in out.items()} if config.channels_last else out


@dataclass
class TrainResult:
    config: TrainConfig
    history: History
    test_acc: float
    test_loss: float
    params: int
    flops: int                      # per image, FlopCounterMode convention (2 per multiply-add)
    seconds: float                  # training time summed over epochs (resumed runs included)
    input_shape: tuple[int, ...]
    dataset_summary: str = ""
    extra: dict = field(default_factory=dict)

    def row(self, name: str | None = None) -> dict:
        return {"model": name or self.config.model, "dataset": self.config.dataset,
                "epochs": len(self.history),
                "test_acc": self.test_acc, "params": self.params, "MFLOPs": self.flops / 1e6,
                "train_s": self.seconds}


def train(config: TrainConfig, splits: Splits | None = None, data_root: str | Path | None = None,
          on_epoch: Callable[[History, dict], None] | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` with the shared recipe; test the last epoch's weights.

    ``on_epoch(history_so_far, static)`` is called after every epoch (``static``: params, FLOPs, data summary),
    e.g. to write partial results while a long run is going.
    """
    seed_everything(config.seed)
    splits = splits or load_splits(config, data_root)
    device = get_device(config.device)
    model = build_model(config, splits.input_shape[0], len(splits.classes))
    flops = measure_flops(model, splits.input_shape)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batches = make_batches(splits, config, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    total_steps = config.num_epochs * len(batches["train"])
    # one-cycle needs a few steps per phase; a run of a handful of steps (tests, tiny subsets) keeps a flat rate
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps,
                                                     pct_start=max(0.25, 2.0 / total_steps))
                 if total_steps >= 5 else None)
    loss_fn = partial(F.cross_entropy, label_smoothing=config.label_smoothing)
    static = {"params": count_parameters(model), "flops": flops, "data": splits.summary()}
    path = config.checkpoint_path()
    # the records so far, resumed epochs included, for on_epoch (fit returns its History only at the end)
    seen = History(list(load_checkpoint(path)["history"]["records"]) if path and path.exists() else [])
    history = fit(model, optimizer, batches["train"], num_epochs=config.num_epochs, val_batches=batches["val"],
                  loss_fn=loss_fn, scheduler=scheduler, scheduler_step="batch", device=device,
                  checkpoint_path=path, progress=config.progress,
                  callbacks=[_grow(seen, on_epoch, static)] if on_epoch else (),
                  desc=f"{config.model} on {config.dataset}")
    seconds = float(sum(history["seconds"]))
    test = evaluate(model, batches["test"], F.cross_entropy, device)
    result = TrainResult(config, history, test["acc"], test["loss"], static["params"], flops, seconds,
                         splits.input_shape, splits.summary())
    result.extra["model"] = model.cpu().to(memory_format=torch.contiguous_format)
    return result


def _grow(history: History, on_epoch, static):
    """A fit callback that appends each epoch's record to ``history`` and hands it to ``on_epoch``."""

    def callback(record: dict) -> None:
        history.records.append(record)
        on_epoch(history, static)

    return callback


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
