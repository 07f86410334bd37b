"""Random search: independent draws from the search space's prior until the epoch budget is spent.

Each config is one uniform gene per parameter decoded by the space (log-uniform learning rate and weight
decay, uniform choices), drawn from a NumPy generator seeded by ``seed``: the sequence of configs is fixed, so
a rerun after a kill proposes the same configs and the cached ones cost nothing.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .objective import Objective
from .records import MethodResult, TrialLog
from .runner import TrialRunner
from .space import SEARCH_SPACE, Param, decode

MAX_DRAWS = 100_000  # a guard; the budget ends the loop long before


def random_search(objective: Objective, budget_epochs: int, *, seed: int = 0, log: TrialLog | None = None,
                  space: Sequence[Param] = SEARCH_SPACE, progress: bool | None = None,
                  method: str = "random") -> MethodResult:
    """Train random configs, each for a full trial, until ``budget_epochs`` are consumed."""
    rng = np.random.default_rng(seed)
    runner = TrialRunner(method, objective, budget_epochs, log, progress)
    for _ in range(MAX_DRAWS):
        if runner.evaluate(decode(rng.random(len(space)), space)) is None:
            break
    return runner.result(seed=seed)
