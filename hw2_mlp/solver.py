"""Mini-batch training for the from-scratch nets of :mod:`hw2_mlp.fc_networks` (task hw2mlp.P1).

``common.fit`` drives ``torch.nn`` modules with ``torch.optim``; these nets have no autograd and update
a plain ``params`` dict with the rules of :mod:`hw2_mlp.optim`, so they get this small loop instead.
Batching is ``common.TensorBatches`` (the data stays on the model's device). Usage::

    solver = Solver(model, splits, update_rule="adam", optim_config={"learning_rate": 1e-3}, num_epochs=10)
    solver.train()            # model.params now hold the best-validation weights
    solver.loss_history, solver.train_acc_history, solver.val_acc_history, solver.best_val_acc

The model needs ``params`` (dict of tensors), ``loss(X) -> scores``, ``loss(X, y) -> (loss, grads)`` and a
``device`` attribute. With ``checkpoint_dir`` (or an explicit ``checkpoint_path``) the state (weights,
optimizer state, histories, best weights, batch order and RNG) is saved atomically after every epoch
(``common.io.save_atomic``), and a later ``train()`` resumes from it and ends exactly where an uninterrupted
run would.

Every setting that changes the result is hashed into :attr:`Solver.key` (``common.io.settings_key``): the
solver's options, the model's architecture and initial weights, the data, and the caller's ``run_settings``
(e.g. the seed of the dropout masks). The number of epochs is not: epoch k does not depend on how many follow,
so asking for more epochs continues a finished run, and a checkpoint with more epochs than asked is refused. Under ``checkpoint_dir`` the file is named ``<name>_<key>.pt``, so a
run with other settings never finds another's file; an explicit ``checkpoint_path`` whose stored key differs
is refused (:class:`common.CheckpointError`), never resumed. Checkpoints are read with ``weights_only=True``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from common import CheckpointError, NonFiniteLossError, TensorBatches, progress_enabled
from common.io import load_checkpoint, save_atomic, settings_key

from .optim import get_update_rule


@dataclass(frozen=True)
class SolverConfig:
    """Defaults of one training run; override any field as a keyword of :class:`Solver`."""

    update_rule: str = "sgd"                       # one of hw2_mlp.optim.UPDATE_RULES
    optim_config: dict = field(default_factory=dict)  # e.g. {"learning_rate": 1e-3}; copied per parameter
    lr_decay: float = 1.0                          # learning_rate *= lr_decay after every epoch
    batch_size: int = 100
    num_epochs: int = 10
    num_train_samples: int | None = 1000           # train accuracy on this many random samples (None: all)
    num_val_samples: int | None = None             # None: the whole validation set
    eval_batch_size: int = 1000
    checkpoint_dir: str | None = None              # checkpoint file <checkpoint_dir>/<checkpoint_name>_<key>.pt
    checkpoint_name: str = "solver"
    checkpoint_path: str | None = None             # an explicit file instead (its stored key must match)
    run_settings: dict = field(default_factory=dict)  # caller's settings the solver cannot see (mask seed...)
    resume: bool = True                            # continue from checkpoint_path when it exists
    seed: int = 0                                  # batch order and accuracy subsets
    progress: bool | None = None                   # tqdm bar; None: common.progress_enabled()
    verbose: bool = False                          # print one line per epoch


def _split_data(data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Accept a ``common.Splits`` (train/val used) or a dict with X_train, y_train, X_val, y_val."""
    if hasattr(data, "train") and hasattr(data, "val"):
        return data.train.X, data.train.y, data.val.X, data.val.y
    if isinstance(data, dict):
        missing = {"X_train", "y_train", "X_val", "y_val"} - set(data)
        if missing:
            raise ValueError(f"data dict lacks {sorted(missing)}; give X_train, y_train, X_val, y_val.")
        return data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    raise ValueError(f"data must be a common.Splits or a dict of X_train/y_train/X_val/y_val, "
                     f"got {type(data).__name__}.")


class Solver:
    """Train ``model`` on ``data`` with one update rule; see the module docstring.

    Args:
        model: a net with ``params``, ``loss`` and ``device`` (e.g. ``FullyConnectedNet``).
        data: ``common.Splits`` or ``{"X_train", "y_train", "X_val", "y_val"}``.
        config: a :class:`SolverConfig`; keyword ``overrides`` replace its fields.
        transform: optional batch augmentation ``f(X_batch, generator) -> X_batch``
            (e.g. ``common.random_crop_flip()``).
    """

    def __init__(self, model, data, config: SolverConfig | None = None, *,
                 transform: Callable | None = None, **overrides):
        config = config or SolverConfig()
        names = {f.name for f in dataclasses.fields(SolverConfig)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown Solver options {sorted(unknown)}; valid: {sorted(names)}.")
        self.config = dataclasses.replace(config, **overrides)
        c = self.config
        self.update_rule = get_update_rule(c.update_rule)
        if c.batch_size < 1 or c.num_epochs < 0 or not 0 < c.lr_decay <= 1:
            raise ValueError(f"need batch_size >= 1, num_epochs >= 0 and lr_decay in (0, 1]; got "
                             f"{c.batch_size}, {c.num_epochs}, {c.lr_decay}.")
        self.model = model
        X_train, y_train, self.X_val, self.y_val = _split_data(data)
        self.batches = TensorBatches(X_train, y_train, c.batch_size, shuffle=True, seed=c.seed,
                                     device=model.device, transform=transform)
        self.key = settings_key(self.settings(transform, X_train, y_train))
        self._reset()

    def settings(self, transform, X_train, y_train) -> dict:
        """Every setting that changes the result of :meth:`train` (hashed into :attr:`key`)."""
        c = self.config
        # num_epochs is left out on purpose: epoch k of a run does not depend on how many epochs follow (the
        # lr decays per epoch, not to a horizon), so a longer run continues a shorter one's checkpoint; a
        # checkpoint with more epochs than asked is refused in load_checkpoint.
        result_fields = ("update_rule", "optim_config", "lr_decay", "batch_size", "num_train_samples",
                         "num_val_samples", "seed", "run_settings")
        return {
            "solver": {name: getattr(c, name) for name in result_fields},
            "transform": getattr(transform, "__qualname__", repr(transform)) if transform else None,
            "model": repr(self.model),
            "initial_params": _fingerprint(*(self.model.params[k] for k in sorted(self.model.params))),
            "data": _fingerprint(X_train, y_train, self.X_val, self.y_val),
        }

    @property
    def checkpoint_file(self) -> Path | None:
        c = self.config
        if c.checkpoint_path:
            return Path(c.checkpoint_path)
        if c.checkpoint_dir:
            return Path(c.checkpoint_dir) / f"{c.checkpoint_name}_{self.key}.pt"
        return None

    def _reset(self) -> None:
        self.epoch = 0
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.best_val_acc = -math.inf
        self.train_seconds = 0.0  # training and evaluation time, summed over resumed sessions
        self.best_params = {k: v.clone() for k, v in self.model.params.items()}
        # each parameter gets its own optimizer state (velocity, moments...)
        self.optim_configs = {k: dict(self.config.optim_config) for k in self.model.params}

    # ------------------------------------------------------------------ training
    def _step(self, X_batch: torch.Tensor, y_batch: torch.Tensor) -> None:
        loss, grads = self.model.loss(X_batch, y_batch)
        loss = float(loss)
        if not math.isfinite(loss):
            raise NonFiniteLossError(self.epoch, len(self.loss_history), loss)
        self.loss_history.append(loss)
        for name, w in self.model.params.items():
            self.model.params[name], self.optim_configs[name] = self.update_rule(
                w, grads[name], self.optim_configs[name])

    def check_accuracy(self, X: torch.Tensor, y: torch.Tensor, num_samples: int | None = None,
                       seed: int = 0) -> float:
        """Accuracy of the model (test mode) on ``X, y``, or on a random ``num_samples`` subset of them."""
        if num_samples is not None and len(y) > num_samples:
            idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:num_samples]
            X, y = X[idx.to(X.device)], y[idx.to(y.device)]
        pred = self.model.predict(X, batch_size=self.config.eval_batch_size)
        return float((pred == y.to(pred.device)).double().mean())

    def train(self) -> "Solver":
        """Run the remaining epochs; afterwards ``model.params`` are the best-validation weights."""
        c = self.config
        path = self.checkpoint_file
        if path is not None and c.resume and path.exists():
            self.load_checkpoint(path)
        progress = progress_enabled(c.progress)
        for epoch in range(self.epoch, c.num_epochs):
            tic = time.perf_counter()
            bar = tqdm(self.batches, desc=f"epoch {epoch + 1}/{c.num_epochs}", disable=not progress,
                       leave=False)
            for X_batch, y_batch in bar:
                self._step(X_batch, y_batch)
            for cfg in self.optim_configs.values():
                cfg["learning_rate"] *= c.lr_decay  # present: the first step filled in the rule's defaults
            self.epoch = epoch + 1
            train_acc = self.check_accuracy(self.batches.X, self.batches.y, c.num_train_samples,
                                            c.seed + epoch)
            val_acc = self.check_accuracy(self.X_val, self.y_val, c.num_val_samples, c.seed + epoch)
            self.train_acc_history.append(train_acc)
            self.val_acc_history.append(val_acc)
            if val_acc > self.best_val_acc:
                self.best_val_acc = val_acc
                self.best_params = {k: v.clone() for k, v in self.model.params.items()}
            if c.verbose:
                print(f"epoch {self.epoch}/{c.num_epochs}: loss {self.loss_history[-1]:.4f}, "
                      f"train acc {train_acc:.4f}, val acc {val_acc:.4f}", flush=True)
            self.train_seconds += time.perf_counter() - tic
            if path is not None:
                self.save_checkpoint(path)
        self.model.params = {k: v.clone() for k, v in self.best_params.items()}
        return self

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        state = {
            "epoch": self.epoch, "params": self.model.params, "best_params": self.best_params,
            "best_val_acc": self.best_val_acc, "optim_configs": self.optim_configs,
            "loss_history": self.loss_history, "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history, "batches": self.batches.state_dict(),
            "update_rule": self.config.update_rule, "torch_rng": torch.get_rng_state(), "key": self.key,
            "train_seconds": self.train_seconds,
        }
        if self.model.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.model.device)
        return state

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` atomically (a kill mid-write leaves the old file)."""
        return save_atomic(self.state_dict(), path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a :meth:`save_checkpoint` file of the same settings into this solver and its model.

        Raises :class:`common.CheckpointError` when the file is unreadable, holds anything but plain values
        (``weights_only=True``), or was written with other settings (its key differs from :attr:`key`)."""
        state = load_checkpoint(path, map_location=self.model.device)
        if state.get("key") != self.key:
            raise CheckpointError(f"checkpoint {path} was written with other settings (key "
                                  f"{state.get('key')!r}, this run {self.key!r}); it is not resumed. Delete it "
                                  f"or use checkpoint_dir, whose file names carry the key.")
        if state["epoch"] > self.config.num_epochs:
            raise CheckpointError(f"checkpoint {path} holds {state['epoch']} epochs, more than the "
                                  f"{self.config.num_epochs} asked for; ask for at least {state['epoch']} epochs "
                                  f"(the run then continues from it) or use another checkpoint folder.")
        self.epoch = state["epoch"]
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.model.params = state["params"]
        self.best_params, self.best_val_acc = state["best_params"], state["best_val_acc"]
        self.optim_configs = state["optim_configs"]
        self.loss_history = state["loss_history"]
        self.train_acc_history = state["train_acc_history"]
        self.val_acc_history = state["val_acc_history"]
        self.batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.model.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.model.device)


def _fingerprint(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes: identifies data and initial weights."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        digest.update(f"{tuple(t.shape)}{t.dtype};".encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()[:16]
