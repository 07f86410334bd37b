"""Training and evaluation of Forward-Forward nets: epochs, logs, checkpoints, linear read-outs.

:func:`train_ff` runs the epochs for both variants:

- ``"supervised"``: positive = image with its true label embedded, negative = the same image with a wrong
  label drawn afresh for every batch of every epoch (uniformly, or the model's own favourite wrong labels
  with ``negatives="hard"``: drawn in proportion to the accumulated goodness of every wrong label).
- ``"unsupervised"``: positive = the real image, negative = a hybrid of two images under a blob mask,
  drawn afresh for every batch. Labels are never looked at.

Every epoch logs, per layer, the local loss, the mean goodness of positive and negative data, the fraction
of positives/negatives on the right side of the threshold (``ff_acc``) and the peer-normalisation term; the
supervised variant also logs train (fixed subset), validation and (every ``test_every`` epochs) test
accuracy of goodness-based prediction. A checkpoint is written atomically after each epoch (tensors and
plain values only, read back with ``weights_only=True``) and carries the settings it was trained with; with
``resume`` training continues where it stopped, bit for bit, and a checkpoint of other settings is refused.

:func:`fit_linear_probe` trains the linear softmax read-out (one-pass supervised variant, and the
classifier on top of the frozen unsupervised net) with :func:`common.fit`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from common import TensorBatches, TensorSplit, evaluate, fit
from common.cli import progress_enabled
from common.errors import CheckpointError
from common.io import load_checkpoint, save_atomic, settings_key

from .ff_data import MASK_BLUR_STEPS, hard_wrong_labels, hybrid_images, random_wrong_labels
from .forward_forward import (STAT_KEYS, FFNet, SupervisedFF, ff_loss, goodness, layer_optimizers,
                              make_optimizer)

MODES = ("supervised", "unsupervised")
NEGATIVES = ("random", "hard")
CODE_VERSION = 2  # bump when a change to the training code changes results: old checkpoints then start fresh


@dataclass(frozen=True)
class FFTrainConfig:
    """Defaults of one FF training run (the paper's net is ``hidden=(2000,) * 4``, 60 epochs supervised)."""

    num_epochs: int = 5
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"        # or "sgd" (with momentum; loeweX's recipe)
    momentum: float = 0.9          # sgd only
    cooldown: bool = True          # linear learning-rate decay over the second half of training
    negatives: str = "random"      # supervised only: "random" or "hard" wrong labels
    hard_temperature: float = 1.0  # softmax temperature on per-unit goodness for hard wrong labels
    mask_steps: int = MASK_BLUR_STEPS
    eval_train_size: int = 2000    # per-epoch train accuracy on a fixed subset (evaluating all is 10x a pass)
    probe_size: int = 500          # images whose per-layer goodness is kept each epoch (histograms)
    test_every: int = 1            # supervised: test accuracy every this many epochs (and after the last)
    seed: int = 0


@dataclass
class FFHistory:
    """Per-epoch records: ``{'epoch', 'seconds', 'eval_seconds', 'examples_per_s', 'lr', 'layers': [{'loss',
    'g_pos', 'g_neg', 'ff_acc', 'peer'}, ...], 'train_acc', 'val_acc', 'test_acc'}`` plus ``probe_goodness``
    (per layer, the goodness of the fixed probe images, positive and negative, as lists)."""

    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def layer(self, key: str) -> list[list[float]]:
        """``key`` per epoch for each layer: ``[[layer1 epoch1, epoch2, ...], [layer2 ...], ...]``."""
        return [list(vals) for vals in zip(*[[lay[key] for lay in r["layers"]] for r in self.records])]

    def __getitem__(self, key: str) -> list:
        return [r[key] for r in self.records if key in r]


def lr_at(config: FFTrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``: constant for the first half, then (with ``cooldown``) falling
    linearly, ``lr * (E - epoch) / (E - E/2 + 1)``, to ``lr / (E/2 + 1)`` in the last epoch."""
    half = config.num_epochs / 2
    if not config.cooldown or epoch < half:
        return config.lr
    return config.lr * (config.num_epochs - epoch) / (config.num_epochs - half + 1)


def wrong_labels(net: SupervisedFF, X: torch.Tensor, y: torch.Tensor, config: FFTrainConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """The negative labels of one batch: uniformly random wrong ones, or the net's own favourites."""
    if config.negatives == "hard":
        return hard_wrong_labels(net.label_scores(X), y, generator, config.hard_temperature)
    return random_wrong_labels(y, generator, net.num_classes)


def make_pair(net: FFNet, mode: str, X: torch.Tensor, y: torch.Tensor, config: FFTrainConfig,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative inputs, both (B, D), for one batch of images X (B, 1, H, W)."""
    if mode == "unsupervised":
        return X.flatten(1), hybrid_images(X, generator, steps=config.mask_steps).flatten(1)
    return net.embed(X, y), net.embed(X, wrong_labels(net, X, y, config, generator))


def train_step(net: FFNet, mode: str, X: torch.Tensor, y: torch.Tensor, config: FFTrainConfig,
               generator: torch.Generator, optimizers: list[torch.optim.Optimizer]) -> list[dict]:
    """One update of every layer on the batch (X, y); the supervised net shares its first layer's work
    between the positive and the negative copy of each image (:meth:`SupervisedFF.labeled_step`)."""
    if mode == "unsupervised":
        return net.train_step(X.flatten(1), hybrid_images(X, generator, steps=config.mask_steps).flatten(1),
                              optimizers)
    return net.labeled_step(X, y, wrong_labels(net, X, y, config, generator), optimizers)


@torch.no_grad()
def layer_goodness(net: FFNet, X_pos: torch.Tensor, X_neg: torch.Tensor) -> list[dict]:
    """Per-layer goodness of positive and negative inputs: ``[{'pos': (N,), 'neg': (N,)}, ...]``."""
    pos, neg = net.activities(X_pos), net.activities(X_neg)
    return [{"pos": goodness(hp), "neg": goodness(hn)} for hp, hn in zip(pos, neg)]


@torch.no_grad()
def ff_losses(net: FFNet, X_pos: torch.Tensor, X_neg: torch.Tensor, batch_size: int = 2000) -> list[float]:
    """Each layer's FF loss over a whole split (positives vs negatives, batched): a list of L floats."""
    sums = torch.zeros(len(net.layers))
    for i in range(0, len(X_pos), batch_size):
        parts = layer_goodness(net, X_pos[i:i + batch_size], X_neg[i:i + batch_size])
        for k, (part, layer) in enumerate(zip(parts, net.layers)):
            sums[k] += ff_loss(part["pos"], part["neg"], layer.theta).cpu() * len(part["pos"])
    return (sums / len(X_pos)).tolist()


def fixed_pair(net: FFNet, mode: str, split: TensorSplit, config: FFTrainConfig, seed: int):
    """Positives and negatives for evaluation, drawn once with ``seed`` (random wrong labels / hybrids)."""
    generator = torch.Generator().manual_seed(seed)
    X, y = split.X.to(next(net.parameters()).device), split.y.to(next(net.parameters()).device)
    if mode == "unsupervised":
        return X.flatten(1), hybrid_images(X, generator, steps=config.mask_steps).flatten(1)
    return net.embed(X, y), net.embed(X, random_wrong_labels(y, generator, net.num_classes))


def checkpoint_file(folder: str | Path, variant: str, settings: dict) -> Path:
    """``folder/ff_<variant>_<key>.pt`` with ``key`` a hash of every setting that changes the result, so a run
    with other settings never resumes from this one's checkpoint."""
    return Path(folder) / f"ff_{variant}_{settings_key({**settings, 'code_version': CODE_VERSION})}.pt"


# Settings added after checkpoints of long runs existed: left out of a checkpoint's key while they keep these
# values, so those checkpoints stay valid; any other value is part of the key like every other setting.
def field_defaults(cls, *names: str) -> dict:
    """``{name: default}`` of the named fields of the dataclass ``cls``."""
    defaults = {f.name: f.default for f in fields(cls)}
    return {name: defaults[name] for name in names}


def without_added_defaults(settings: dict, added: dict) -> dict:
    """``settings`` minus the entries of ``added`` that still hold their default value (see above)."""
    return {k: v for k, v in settings.items() if k not in added or v != added[k]}


ADDED_TRAIN_SETTINGS = field_defaults(FFTrainConfig, "optimizer", "momentum")


def train_settings(net: FFNet, mode: str, config: FFTrainConfig) -> dict:
    """What the checkpoint must match to be resumed: mode, sizes, the layers' options and the config."""
    first = net.layers[0]
    settings = {"mode": mode, "sizes": list(net.sizes), "theta": [layer.theta for layer in net.layers],
                "peer_norm": first.peer_norm, "label_value": getattr(net, "label_value", None),
                "config": without_added_defaults(asdict(config), ADDED_TRAIN_SETTINGS),
                "code_version": CODE_VERSION}
    if first.full_grad:
        settings["full_grad"] = True
    return settings


def train_ff(net: FFNet, train: TensorSplit, config: FFTrainConfig = FFTrainConfig(), *,
             mode: str = "supervised", val: TensorSplit | None = None, test: TensorSplit | None = None,
             checkpoint_path: str | Path | None = None, settings: dict | None = None, resume: bool = True,
             progress: bool | None = None, log: Callable[[str], None] | None = print,
             on_epoch: Callable[[FFNet, dict, "FFHistory"], None] | None = None,
             after_epoch: Callable[[FFNet, dict, "FFHistory"], None] | None = None) -> FFHistory:
    """Train every layer of ``net`` on its own FF loss for ``config.num_epochs`` epochs.

    Args:
        net: a :class:`SupervisedFF` for ``mode="supervised"``, any :class:`FFNet` for ``"unsupervised"``.
        train / val / test: image splits (X (N, 1, H, W), y (N,)); ``val`` and ``test`` only feed the
            supervised log (val every epoch, test every ``config.test_every`` epochs and after the last).
        checkpoint_path: saved after every epoch; an existing file is resumed from when ``resume``.
        settings: extra settings the checkpoint must match (data limits...), besides
            :func:`train_settings`; a checkpoint of other settings raises :class:`CheckpointError`.
        on_epoch: ``f(net, record, history)`` after each epoch, before the checkpoint is written; it may add
            keys to ``record`` (they are checkpointed).
        after_epoch: ``f(net, record, history)`` once the epoch's checkpoint is written (partial results).
        log: called with one line per epoch (``None`` for silence).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if config.negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {config.negatives!r}")
    if mode == "supervised" and not isinstance(net, SupervisedFF):
        raise TypeError("supervised FF needs a SupervisedFF net (it embeds labels); use mode='unsupervised' "
                        "for a plain FFNet")
    device = next(net.parameters()).device
    optimizers = layer_optimizers(net, config.lr, config.weight_decay, optimizer=config.optimizer,
                                  momentum=config.momentum)
    batches = TensorBatches(train.X, train.y, config.batch_size, shuffle=True, drop_last=True, device=device,
                            seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed + 1)  # negatives and masks
    probe = train.head(config.probe_size, config.seed)
    probe_pos, probe_neg = fixed_pair(net, mode, probe, config, config.seed + 2)
    eval_train = train.head(config.eval_train_size, config.seed).to(device)
    history, start = FFHistory(), 0
    expected = {**train_settings(net, mode, config), **(settings or {})}
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and resume and path.exists():
        start = _load(path, net, optimizers, batches, generator, history, expected)
    progress = progress_enabled(progress)
    for epoch in range(start, config.num_epochs):
        net.train()
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, epoch)
        sums = torch.zeros(len(net.layers), len(STAT_KEYS))
        tic, steps = time.perf_counter(), 0
        bar = tqdm(batches, desc=f"FF {mode} epoch {epoch + 1}/{config.num_epochs}", disable=not progress,
                   leave=False)
        for X, y in bar:
            stats = train_step(net, mode, X, y, config, generator, optimizers)
            sums += torch.stack([torch.stack([s[k] for k in STAT_KEYS]) for s in stats]).cpu()
            steps += 1
            if progress and steps % 50 == 0:
                bar.set_postfix(loss=f"{float(stats[-1]['loss']):.3f}")
        seconds = time.perf_counter() - tic
        means = (sums / max(steps, 1)).tolist()
        record = {"epoch": epoch + 1, "seconds": seconds,
                  "examples_per_s": steps * config.batch_size / seconds,
                  "lr": lr_at(config, epoch),
                  "layers": [dict(zip(STAT_KEYS, row)) for row in means]}
        tic = time.perf_counter()
        net.eval()
        if mode == "supervised":
            record["train_acc"] = accuracy_of(net, eval_train)
            if val is not None and len(val):
                record["val_acc"] = accuracy_of(net, val.to(device))
            if test is not None and ((epoch + 1) % max(config.test_every, 1) == 0
                                     or epoch + 1 == config.num_epochs):
                record["test_acc"] = accuracy_of(net, test.to(device))
        record["probe_goodness"] = [{k: v.cpu().tolist() for k, v in part.items()}
                                    for part in layer_goodness(net, probe_pos, probe_neg)]
        history.records.append(record)
        if on_epoch is not None:
            on_epoch(net, record, history)
        record["eval_seconds"] = time.perf_counter() - tic
        if path is not None:
            save_atomic({"epoch": epoch + 1, "settings": expected, "net": net.state_dict(),
                         "optimizers": [o.state_dict() for o in optimizers],
                         "batches": batches.state_dict(), "generator": generator.get_state(),
                         "records": history.records}, path)
        if log is not None:
            log(format_record(record))
        if after_epoch is not None:
            after_epoch(net, record, history)
    net.eval()
    return history


def _load(path: Path, net, optimizers, batches, generator, history: FFHistory, expected: dict) -> int:
    state = load_checkpoint(path, map_location=next(net.parameters()).device)
    saved = state.get("settings")
    if saved != expected:
        differ = sorted(k for k in set(expected) | set(saved or {}) if (saved or {}).get(k) != expected.get(k))
        raise CheckpointError(f"checkpoint {path} was trained with other settings ({', '.join(differ)} "
                              f"differ); use another checkpoint path or delete it to start fresh.")
    net.load_state_dict(state["net"])
    for optimizer, saved_state in zip(optimizers, state["optimizers"]):
        optimizer.load_state_dict(saved_state)
    batches.load_state_dict(state["batches"])
    generator.set_state(state["generator"].cpu())
    history.records.extend(state["records"])
    return int(state["epoch"])


def format_record(record: dict) -> str:
    """One log line: epoch, per-layer loss / mean goodness (pos/neg) / ff_acc, accuracies, speed."""
    layers = " | ".join(f"L{i + 1} loss {lay['loss']:.3f} g+ {lay['g_pos']:.0f} g- {lay['g_neg']:.0f} "
                        f"acc {lay['ff_acc']:.3f}" for i, lay in enumerate(record["layers"]))
    accs = "".join(f" | {k} {record[k]:.4f}" for k in ("train_acc", "val_acc", "test_acc",
                                                         "quick_probe_test_acc") if k in record)
    return (f"epoch {record['epoch']:3d} | {layers}{accs} | {record['seconds']:.1f} s, "
            f"{record['examples_per_s']:.0f} ex/s")


@torch.no_grad()
def accuracy_of(net: SupervisedFF, split: TensorSplit, batch_size: int = 1000) -> float:
    """Accuracy of goodness-based prediction (every candidate label, accumulated goodness)."""
    predictions = net.predict(split.X.to(next(net.parameters()).device), batch_size)
    return float((predictions.cpu() == split.y.cpu()).float().mean())


def fit_linear_probe(train_features: torch.Tensor, y_train: torch.Tensor, eval_sets: dict, *,
                     num_epochs: int = 10, lr: float = 1e-3, batch_size: int = 100,
                     weight_decay: float = 0.0, seed: int = 0, optimizer: str = "adam",
                     momentum: float = 0.9) -> tuple[nn.Module, dict, dict]:
    """A linear softmax classifier on frozen features, trained with :func:`common.fit` (Adam, or SGD with
    ``momentum`` when ``optimizer="sgd"``).

    Args:
        train_features: (N, F) features (e.g. :meth:`FFNet.features`), y_train: (N,) labels.
        eval_sets: ``{name: (features (M, F), y (M,))}``; the first one is the per-epoch validation.
    Returns:
        ``(model, history records, {name: {'loss', 'acc'}})`` with ``'train'`` included.
    """
    torch.manual_seed(seed)
    num_classes = 1 + max(int(y.max()) for y in [y_train] + [y for _, y in eval_sets.values()])
    model = nn.Linear(train_features.shape[1], num_classes).to(train_features.device)
    step_rule = make_optimizer(model.parameters(), optimizer, lr, weight_decay, momentum)
    batches = TensorBatches(train_features, y_train, batch_size, seed=seed)
    sets = {name: TensorBatches(f, y, 4096, shuffle=False) for name, (f, y) in eval_sets.items()}
    first = next(iter(sets.values()), None)
    history = fit(model, step_rule, batches, num_epochs=num_epochs, val_batches=first,
                  loss_fn=F.cross_entropy, progress=False, desc="linear probe")
    metrics = {"train": evaluate(model, TensorBatches(train_features, y_train, 4096, shuffle=False))}
    metrics.update({name: evaluate(model, b) for name, b in sets.items()})
    return model, history.records, metrics


def probe_features(net: FFNet, split: TensorSplit, neutral: bool, batch_size: int = 2000) -> torch.Tensor:
    """Normalized activities of all but the first layer (neutral label embedded when ``neutral``): (N, F)."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(split), batch_size):
        X = split.X[i:i + batch_size].to(device)
        out.append(net.neutral_features(X) if neutral else net.features(X))
    return torch.cat(out)


__all__ = ["FFTrainConfig", "FFHistory", "train_ff", "fit_linear_probe", "probe_features", "accuracy_of",
           "ff_losses", "fixed_pair", "layer_goodness", "format_record", "lr_at", "checkpoint_file",
           "train_settings", "train_step", "CODE_VERSION"]
