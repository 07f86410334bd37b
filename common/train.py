"""One training loop for the whole repository: :func:`fit`.

Features: optimizer + optional scheduler, mixed precision on CUDA (bfloat16 autocast), a tqdm bar (silent
when stderr is not a terminal or ``progress=False``), per-epoch callbacks (Optuna pruning, early stopping),
an atomic checkpoint after every epoch with exact resume (model, optimizer, scheduler, RNG and batch-order
state), and a guard that raises :class:`NonFiniteLossError` the moment the loss is NaN or infinite.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .cli import progress_enabled
from .io import load_checkpoint, save_atomic

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[dict], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (divergence: learning rate too high, bad data...)."""

    def __init__(self, epoch: int, step: int, loss: float):
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(f"training loss is {loss} at epoch {epoch}, step {step}; training diverged "
                         f"(lower the learning rate, add gradient clipping, or check the inputs).")


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (its record is kept)."""


@dataclass
class History:
    """Per-epoch records: ``{'epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr', 'seconds'}``."""

    records: list[dict] = field(default_factory=list)
    best_state: dict | None = None  # state_dict of the best epoch by ``monitor`` (when validation is given)
    best_epoch: int | None = None

    def __getitem__(self, key: str) -> list:
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable, loss_fn: LossFn = F.cross_entropy,
             device: torch.device | None = None, amp: bool = False) -> dict:
    """Mean loss and accuracy of ``model`` over ``batches`` (model put in eval mode, then restored)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    for xb, yb in batches:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(xb)
        total_loss += float(loss_fn(logits.float(), yb)) * len(yb)
        if logits.dim() == 2:
            correct += int((logits.argmax(1) == yb).sum())
        count += len(yb)
    model.train(was_training)
    out = {"loss": total_loss / max(count, 1)}
    if count and correct is not None:
        out["acc"] = correct / count
    return out


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable, device: torch.device | None = None) -> tuple:
    """Concatenated ``(logits, targets)`` over ``batches`` in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for xb, yb in batches:
        logits.append(model(xb.to(device)).float().cpu())
        targets.append(yb.cpu())
    model.train(was_training)
    return torch.cat(logits), torch.cat(targets)


class EarlyStopping:
    """``fit`` callback: raise :class:`StopTraining` after ``patience`` epochs without a new best
    ``monitor`` value (higher is better)."""

    def __init__(self, patience: int, monitor: str = "val_acc"):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.monitor = patience, monitor
        self.best, self.since_best = float("-inf"), 0

    def __call__(self, record: dict) -> None:
        if record[self.monitor] > self.best:
            self.best, self.since_best = record[self.monitor], 0
        else:
            self.since_best += 1
            if self.since_best >= self.patience:
                raise StopTraining


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared tensors counted once); only those with
    ``requires_grad`` when ``trainable_only``. Works on the meta device too."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_batches: Iterable, *,
        num_epochs: int, val_batches: Iterable | None = None, loss_fn: LossFn = F.cross_entropy,
        scheduler=None, scheduler_step: str = "epoch", device: torch.device | str | None = None,
        amp: bool = True, grad_clip: float | None = None, callbacks: Iterable[Callback] = (),
        checkpoint_path: str | Path | None = None, resume: bool = True, progress: bool | None = None,
        monitor: str = "val_acc", desc: str = "fit") -> History:
    """Train ``model`` for ``num_epochs`` epochs and return its :class:`History`.

    Args:
        train_batches: re-iterable of ``(X, y)`` (``TensorBatches`` or a ``DataLoader``); if it has
            ``state_dict``/``load_state_dict`` its shuffling state is checkpointed too.
        scheduler / scheduler_step: stepped once per ``"epoch"`` or per ``"batch"``.
        callbacks: each called as ``cb(record)`` after every epoch; may raise :class:`StopTraining`
            (ends training) or any other exception (e.g. ``optuna.TrialPruned``), which propagates after
            the epoch's checkpoint is written.
        checkpoint_path: where to save after every epoch; with ``resume`` an existing file is loaded and
            training continues from the next epoch, giving the same result as an uninterrupted run.
        monitor: record key (higher is better) whose best epoch's weights are kept in ``History.best_state``.
    """
    if num_epochs < 0:
        raise ValueError(f"num_epochs must be >= 0, got {num_epochs}")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    history = History()
    start_epoch = 0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and resume and path.exists():
        start_epoch, history = _load_checkpoint(path, model, optimizer, scheduler, train_batches, device)
    progress = progress_enabled(progress)
    bar = tqdm(total=num_epochs, initial=start_epoch, desc=desc, disable=not progress, leave=False)
    try:
        for epoch in range(start_epoch, num_epochs):
            record = _train_epoch(model, optimizer, train_batches, loss_fn, scheduler, scheduler_step,
                                  device, amp, grad_clip, epoch)
            if val_batches is not None:
                metrics = evaluate(model, val_batches, loss_fn, device, amp)
                record.update({f"val_{k}": v for k, v in metrics.items()})
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step()
            history.records.append(record)
            if monitor in record and (history.best_epoch is None
                                      or record[monitor] > history.records[history.best_epoch][monitor]):
                history.best_epoch = len(history.records) - 1
                history.best_state = copy.deepcopy(model.state_dict())
            if path is not None:
                save_atomic(_checkpoint(epoch + 1, model, optimizer, scheduler, train_batches, history), path)
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in
                             ("train_loss", "train_acc", "val_loss", "val_acc")})
            try:
                for callback in callbacks:
                    callback(record)
            except StopTraining:
                break
    finally:
        bar.close()
    return history


def _train_epoch(model, optimizer, batches, loss_fn, scheduler, scheduler_step, device, amp, grad_clip,
                 epoch) -> dict:
    model.train()
    tic = time.perf_counter()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for step, (xb, yb) in enumerate(batches):
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(xb)
            loss = loss_fn(logits.float(), yb)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(epoch, step, float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None and scheduler_step == "batch":
            scheduler.step()
        total_loss += loss.detach() * len(yb)
        if logits.dim() == 2 and yb.dim() == 1:
            correct += (logits.detach().argmax(1) == yb).sum()
        count += len(yb)
    record = {"epoch": epoch + 1, "train_loss": float(total_loss) / max(count, 1),
              "train_acc": int(correct) / max(count, 1), "lr": optimizer.param_groups[0]["lr"]}
    record["seconds"] = time.perf_counter() - tic
    return record


def _checkpoint(epoch, model, optimizer, scheduler, batches, history) -> dict:
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "batches": batches.state_dict() if hasattr(batches, "state_dict") else None,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "history": {"records": history.records, "best_epoch": history.best_epoch,
                    "best_state": history.best_state},
    }


def _load_checkpoint(path, model, optimizer, scheduler, batches, device) -> tuple[int, History]:
    state = load_checkpoint(path, map_location=device)  # weights_only: a crafted pickle runs nothing
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state["batches"] is not None and hasattr(batches, "load_state_dict"):
        batches.load_state_dict(state["batches"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    saved = state["history"]
    return state["epoch"], History(saved["records"], saved["best_state"], saved["best_epoch"])
