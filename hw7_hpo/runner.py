"""Budgeted, cached, resumable evaluation of configs: what grid, random search and the GA share.

``TrialRunner.evaluate(config)`` returns the finished :class:`TrialRecord` of ``config``:

- from the cache if this config was trained before, in this run or in a run that was killed (the log is
  loaded at start), at no epoch cost: a repeated GA individual is not retrained, and a rerun skips every
  trial already recorded;
- else by training it for ``min(max_epochs, remaining budget)`` epochs, appending the record to the log;
- else ``None`` when the epoch budget is spent (the searcher stops).

Budget rule (the same for all four searchers): the sum of epochs actually trained never exceeds
``budget_epochs``; the last trial is shortened to fit. A trial killed mid-way is not charged (it never
finished) and is trained again on the rerun.
"""
from __future__ import annotations

import time
from typing import Mapping

from tqdm.auto import tqdm

from common import progress_enabled

from .objective import Objective
from .records import MethodResult, TrialLog, TrialRecord
from .space import config_key


def epoch_bar(method: str, budget_epochs: int, initial: int, progress: bool | None) -> tqdm:
    """One bar per method, counted in training epochs (the budget currency)."""
    return tqdm(total=budget_epochs, initial=min(initial, budget_epochs), desc=f"{method:>16}", unit="ep",
                disable=not progress_enabled(progress), leave=True, dynamic_ncols=True)


class TrialRunner:
    """Evaluate configs for one method within an epoch budget, with a fitness cache and a resume log."""

    def __init__(self, method: str, objective: Objective, budget_epochs: int, log: TrialLog | None = None,
                 progress: bool | None = None):
        if budget_epochs < 1:
            raise ValueError(f"budget_epochs must be >= 1, got {budget_epochs}")
        self.method, self.objective, self.budget_epochs, self.log = method, objective, budget_epochs, log
        self.trials: list[TrialRecord] = log.load() if log is not None else []
        self.cache: dict[str, TrialRecord] = {config_key(t.config): t for t in self.trials}
        self.resumed = len(self.trials)
        self.cache_hits = 0
        self._tic = time.perf_counter()
        self.bar = epoch_bar(method, budget_epochs, self.spent, progress)

    @property
    def spent(self) -> int:
        return sum(t.epochs for t in self.trials)

    @property
    def remaining(self) -> int:
        return self.budget_epochs - self.spent

    def evaluate(self, config: Mapping) -> TrialRecord | None:
        """The record of ``config``: cached, freshly trained, or ``None`` when the budget is spent."""
        key = config_key(config)
        if key in self.cache:
            self.cache_hits += 1
            return self.cache[key]
        if self.remaining <= 0:
            return None

        def on_epoch(epoch: int, val_acc: float) -> None:
            self.bar.update(1)

        outcome = self.objective(config, max_epochs=min(self.objective.max_epochs, self.remaining),
                                 on_epoch=on_epoch)
        self.bar.update(outcome.epochs - len(outcome.val_curve))  # the diverged partial epoch
        record = TrialRecord.from_outcome(self.method, len(self.trials), config, outcome)
        if self.log is not None:
            self.log.append(record)
        self.trials.append(record)
        self.cache[key] = record
        best = max((t.val_acc for t in self.trials if t.status == "complete" and t.val_acc is not None),
                   default=float("nan"))
        self.bar.set_postfix(best=f"{best:.4f}", trials=len(self.trials))
        return record

    def result(self, **extra) -> MethodResult:
        """Close the bar and package the run (``extra``: searcher-specific facts for the report)."""
        self.bar.close()
        extra = {"resumed_trials": self.resumed, "cache_hits": self.cache_hits, **extra}
        return MethodResult(self.method, list(self.trials), self.budget_epochs,
                            time.perf_counter() - self._tic, extra)
