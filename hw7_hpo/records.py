"""The result record every searcher returns, and the JSON-lines log that makes grid/random/GA resumable.

- :class:`TrialRecord`: one finished training (config, status, epochs, validation curve, scores).
- :class:`MethodResult`: one searcher's run: best config, best validation accuracy, test accuracy of that
  config, epochs consumed, seconds, and the trial history in finish order; ``curve()`` is the best-so-far
  validation accuracy against epochs consumed, the quantity the comparison is about.
- :class:`TrialLog`: ``<out>/trials/<method>.jsonl``, one line per finished trial, flushed and fsynced, so a
  killed run loses at most the trial in flight; a torn last line is dropped on load.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from common import CheckpointError, write_text_atomic

from .objective import TrialOutcome


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial. ``val_acc`` is the best epoch's validation accuracy (``None`` if diverged)."""

    method: str
    number: int
    config: dict
    status: str  # complete | pruned | diverged
    epochs: int
    val_acc: float | None
    test_acc: float | None
    best_epoch: int | None
    seconds: float
    val_curve: tuple[float, ...] = ()
    finished: float = 0.0  # unix time; orders trials of parallel workers
    error: str = ""

    @classmethod
    def from_outcome(cls, method: str, number: int, config: Mapping, outcome: TrialOutcome) -> "TrialRecord":
        return cls(method, number, dict(config), outcome.status, outcome.epochs, outcome.val_acc,
                   outcome.test_acc, outcome.best_epoch, outcome.seconds, tuple(outcome.val_curve),
                   time.time(), outcome.error)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialRecord":
        data = dict(data)
        data["val_curve"] = tuple(data.get("val_curve", ()))
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MethodResult:
    """One searcher's run. Trials are in finish order; ``extra`` holds searcher-specific facts."""

    method: str
    trials: list[TrialRecord]
    budget_epochs: int
    wall_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Training epochs consumed by all trials (pruned and diverged ones included)."""
        return sum(t.epochs for t in self.trials)

    @property
    def train_seconds(self) -> float:
        return sum(t.seconds for t in self.trials)

    @property
    def best(self) -> TrialRecord | None:
        """The complete trial with the highest validation accuracy (the earliest on ties)."""
        best = None
        for t in self.trials:
            scored = t.status == "complete" and t.val_acc is not None
            if scored and (best is None or t.val_acc > best.val_acc):
                best = t
        return best

    @property
    def best_config(self) -> dict | None:
        return self.best.config if self.best else None

    @property
    def best_val_acc(self) -> float | None:
        return self.best.val_acc if self.best else None

    @property
    def test_acc(self) -> float | None:
        """Test accuracy of the best config (its best-validation epoch); never used to select."""
        return self.best.test_acc if self.best else None

    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "diverged": 0}
        for t in self.trials:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def curve(self) -> tuple[list[int], list[float]]:
        """Best-so-far validation accuracy after each trial vs cumulative epochs (complete trials score)."""
        epochs, best, used, so_far = [], [], 0, float("nan")
        for t in self.trials:
            used += t.epochs
            if t.status == "complete" and t.val_acc is not None and not (so_far >= t.val_acc):
                so_far = t.val_acc
            epochs.append(used)
            best.append(so_far)
        return epochs, best

    def epochs_to_reach(self, target: float) -> int | None:
        """Epochs consumed when the best-so-far first reached ``target`` (``None`` if never)."""
        for used, value in zip(*self.curve()):
            if value == value and value >= target - 1e-12:
                return used
        return None

    def summary_row(self) -> dict:
        counts = self.counts()
        return {"method": self.method, "best_val_acc": self.best_val_acc, "test_acc": self.test_acc,
                "epochs": self.epochs, "budget_epochs": self.budget_epochs, "trials": len(self.trials),
                "complete": counts["complete"], "pruned": counts["pruned"], "diverged": counts["diverged"],
                "train_seconds": round(self.train_seconds, 2), "wall_seconds": round(self.wall_seconds, 2)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MethodResult":
        """The inverse of :meth:`to_dict` (a method's entry of a run's ``results.json``)."""
        return cls(data["method"], [TrialRecord.from_dict(t) for t in data["trials"]], int(data["budget_epochs"]),
                   float(data.get("wall_seconds", 0.0)), dict(data.get("extra", {})))

    def to_dict(self) -> dict:
        epochs, best = self.curve()
        return {**self.summary_row(), "best_config": self.best_config, "extra": self.extra,
                "curve": {"epochs": epochs, "best_val_acc": [None if b != b else b for b in best]},
                "trials": [t.to_dict() for t in self.trials]}


class TrialLog:
    """Append-only JSON-lines file of :class:`TrialRecord` (the resume state of grid/random/GA)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self, repair: bool = True) -> list[TrialRecord]:
        """Every complete line; a torn last line (kill mid-write) is dropped and, with ``repair``, the file
        rewritten without it. Any other unreadable line is a one-line :class:`~common.CheckpointError`
        naming the file."""
        if not self.path.exists():
            return []
        fix = "delete the file to run this method again from the start, or choose another --out"
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"trial log {self.path} is not text; {fix}.") from None
        records, good_lines = [], []
        for number, line in enumerate(text.splitlines(keepends=True), 1):
            if not line.endswith("\n"):
                break  # torn write: everything before it is intact
            try:
                records.append(TrialRecord.from_dict(json.loads(line)))
                good_lines.append(line)
            except (json.JSONDecodeError, TypeError, ValueError, KeyError):
                raise CheckpointError(f"trial log {self.path} has an unreadable record on line {number}; "
                                      f"{fix}.") from None
        if repair and len("".join(good_lines)) != len(text):
            write_text_atomic(self.path, "".join(good_lines))
        return records

    def append(self, record: TrialRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record.to_dict()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def best_so_far_table(results: Sequence[MethodResult], checkpoints: Sequence[int]) -> list[dict]:
    """Rows of best-so-far validation accuracy of each method at the given epoch counts."""
    rows = []
    for r in results:
        row: dict[str, Any] = {"method": r.method}
        epochs, best = r.curve()
        for c in checkpoints:
            reached = [b for e, b in zip(epochs, best) if e <= c and b == b]
            row[f"@{c}"] = reached[-1] if reached else float("nan")
        rows.append(row)
    return rows
