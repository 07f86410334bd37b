"""Grid search: a coarse grid over the most important axes, sized by the epoch budget.

The grid has at most ``budget_epochs // max_epochs`` points (every point is a full-length trial), spread over
:data:`~hw7_hpo.space.GRID_AXES` by :func:`~hw7_hpo.space.grid_levels`; the other hyperparameters stay at
their defaults. Epochs left over when the levels do not multiply out to the budget are not spent: a grid
cannot use a fraction of a level.
"""
from __future__ import annotations

from typing import Sequence

from .objective import Objective
from .records import MethodResult, TrialLog
from .runner import TrialRunner
from .space import GRID_AXES, SEARCH_SPACE, Param, grid_configs, grid_levels


def grid_search(objective: Objective, budget_epochs: int, *, log: TrialLog | None = None,
                space: Sequence[Param] = SEARCH_SPACE, axes: Sequence[str] = GRID_AXES,
                progress: bool | None = None, method: str = "grid") -> MethodResult:
    """Train every grid point (in order) until the grid or the budget is exhausted."""
    num_configs = max(1, budget_epochs // objective.max_epochs)
    configs = grid_configs(num_configs, space, axes)
    runner = TrialRunner(method, objective, budget_epochs, log, progress)
    for config in configs:
        if runner.evaluate(config) is None:
            break
    return runner.result(levels=grid_levels(num_configs, space, axes), grid_size=len(configs))
