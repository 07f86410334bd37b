"""Training a (LoRA) ViT classifier with ``transformers.Trainer`` (hw5.P5, step 4).

``train_classifier`` evaluates and saves every epoch, reloads the best checkpoint by validation accuracy at
the end and returns one record per epoch (:class:`TrainResult`). Output is quiet by design: no progress bars
and no raw ``{'loss': ...}`` dicts (the Trainer prints those from its printer/progress callbacks); pass
``log=print`` for one formatted line per epoch instead. ``resume=True`` continues from the last checkpoint in
``output_dir`` (optimizer state included), so a killed run rerun with the same settings picks up where it
stopped; the epoch records live in the Trainer's own state, which is saved with each checkpoint.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from common import CheckpointError, load_checkpoint, read_json

from .food_data import collate
from .lora import quiet_transformers

EPOCH_SECONDS = "epoch_seconds"  # our key in the Trainer's log history


@dataclass(frozen=True)
class TrainConfig:
    """``Trainer`` settings; the defaults follow the PEFT guide (lr 5e-3 for LoRA, 5 epochs)."""

    num_epochs: int = 5
    lr: float = 5e-3
    batch_size: int = 128
    eval_batch_size: int = 256
    grad_accum: int = 1
    weight_decay: float = 0.0
    num_workers: int = 0
    seed: int = 0
    resume: bool = False  # keep optimizer state in checkpoints and continue from the last one
    use_cpu: bool = False  # stay on the CPU even when CUDA is present (--device cpu)


@dataclass
class TrainResult:
    """The trainer (its model holds the best checkpoint's weights) and one record per epoch."""

    trainer: object
    epochs: list[dict] = field(default_factory=list)  # {epoch, train_loss, val_loss, val_accuracy, seconds}

    @property
    def best_accuracy(self) -> float:
        return max(e["val_accuracy"] for e in self.epochs)

    @property
    def best_epoch(self) -> int:
        return max(self.epochs, key=lambda e: e["val_accuracy"])["epoch"]

    def curve(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]


def accuracy_metric(eval_pred) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: top-1 accuracy of (N, K) logits against (N,) labels."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def _epoch_log(log: Callable[[str], None] | None, num_epochs: int):
    from transformers import TrainerCallback

    class EpochLog(TrainerCallback):
        """Times each training epoch into the Trainer's log history (``on_epoch_end`` fires before the
        evaluation and the checkpoint save) and reports each evaluation as one line through ``log``."""

        def on_epoch_begin(self, args, state, control, **kwargs):
            self._tic = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            state.log_history.append({"epoch": state.epoch, EPOCH_SECONDS: time.perf_counter() - self._tic})

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if log is not None and metrics:
                log(f"epoch {round(state.epoch)}/{num_epochs}: val loss {metrics['eval_loss']:.4f}, "
                    f"val accuracy {metrics['eval_accuracy']:.4f}")

    return EpochLog()


def training_arguments(output_dir: str | Path, cfg: TrainConfig):
    """Evaluate and save every epoch, keep the best checkpoint by accuracy, GPU (bf16) when present."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available() and not cfg.use_cpu
    return TrainingArguments(
        output_dir=str(output_dir), remove_unused_columns=False,  # keep the transformed column for collate
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
        # resumable runs keep every epoch's checkpoint: with a limit the Trainer deletes the newest one when
        # it is not the best, and a rerun would then train the last epochs again
        save_total_limit=None if cfg.resume else 1, save_only_model=not cfg.resume, label_names=["labels"],
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, num_train_epochs=cfg.num_epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum, dataloader_num_workers=cfg.num_workers,
        dataloader_pin_memory=cuda, use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        seed=cfg.seed, report_to="none", disable_tqdm=True)


def _best_checkpoint_trainer():
    from transformers import Trainer

    class BestCheckpointTrainer(Trainer):
        """``Trainer`` whose end-of-training reload of the best checkpoint also works for plain ViTs.

        transformers 5 saves checkpoints with the legacy key names (``...attention.attention.query``) but
        ``Trainer._load_best_model`` loads them by a raw ``load_state_dict(strict=False)``: for a plain ViT
        nothing matches and the last epoch's weights silently stay (transformers issue #43701). Loading with
        ``from_pretrained`` applies the renaming; PEFT adapters (current names) use the stock path.
        """

        def _load_best_model(self):
            if hasattr(self.model, "peft_config") or not hasattr(self.model, "from_pretrained"):
                return super()._load_best_model()
            best = type(self.model).from_pretrained(self.state.best_model_checkpoint)
            self.model.load_state_dict(best.state_dict())  # strict: every key must match

    return BestCheckpointTrainer


def epoch_records(log_history: list[dict]) -> list[dict]:
    """One ``{epoch, train_loss, val_loss, val_accuracy, seconds}`` per epoch from a Trainer log history."""
    by_epoch: dict[int, dict] = {}
    for entry in log_history:
        epoch = int(round(entry.get("epoch", 0)))
        row = by_epoch.setdefault(epoch, {"epoch": epoch})
        if "loss" in entry:
            row["train_loss"] = entry["loss"]
        if "eval_accuracy" in entry:
            row["val_loss"], row["val_accuracy"] = entry["eval_loss"], entry["eval_accuracy"]
        if EPOCH_SECONDS in entry:  # the first: a run resumed after its last epoch passes through once more
            row.setdefault("seconds", entry[EPOCH_SECONDS])
    keys = ("train_loss", "val_loss", "val_accuracy", "seconds")
    return [by_epoch[e] for e in sorted(by_epoch) if all(k in by_epoch[e] for k in keys)]


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-<step>`` folder the Trainer left in ``output_dir``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(output_dir)
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def check_checkpoint(output_dir: str | Path) -> str | None:
    """The checkpoint a resumed run would start from (None: a fresh start), after checking that its trainer
    state, weights and optimizer state can be read; raises :class:`common.CheckpointError` naming the folder to
    delete. Reads only; call it before any work."""
    from safetensors import safe_open

    last = last_checkpoint(output_dir)
    if last is None:
        return None
    folder = Path(last)
    state = read_json(folder / "trainer_state.json", "Trainer state") if (folder / "trainer_state.json").is_file() \
        else None
    if not isinstance(state, dict) or "log_history" not in state:
        raise CheckpointError(f"checkpoint {folder} has no readable trainer_state.json; delete {folder} to "
                              f"resume from the one before it (or the whole folder to start fresh).")
    for weights in folder.glob("*.safetensors"):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except Exception as err:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"checkpoint weights {weights} cannot be read ({type(err).__name__}); delete "
                                  f"{folder} to resume from the one before it.") from None
    for torch_file in ("optimizer.pt", "scheduler.pt"):
        if (folder / torch_file).is_file():
            load_checkpoint(folder / torch_file)  # CheckpointError when corrupt or holding code
    return last


def train_classifier(model, train_ds, val_ds, output_dir: str | Path, cfg: TrainConfig = TrainConfig(), *,
                     log: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``model`` with ``transformers.Trainer`` on preprocessed datasets (``food_data.preprocess``)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer = _best_checkpoint_trainer()(
        model=model, args=training_arguments(output_dir, cfg), train_dataset=train_ds, eval_dataset=val_ds,
        data_collator=collate, compute_metrics=accuracy_metric, callbacks=[_epoch_log(log, cfg.num_epochs)])
    for noisy in (PrinterCallback, ProgressCallback):  # they print every log dict raw
        trainer.remove_callback(noisy)
    resume_from = check_checkpoint(output_dir) if cfg.resume else None
    with quiet_transformers():
        trainer.train(resume_from_checkpoint=resume_from)
    return TrainResult(trainer, epoch_records(trainer.state.log_history))
