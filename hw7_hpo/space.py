"""The search space, declared once as data and read by all four searchers.

Every hyperparameter is a small frozen record that knows four views of itself:

- ``decode(u)``: a gene ``u`` in [0, 1] to a value (the genetic algorithm's encoding; random search draws
  ``u ~ U(0, 1)``, so its prior is exactly the encoding's: log-uniform for :class:`LogFloat`);
- ``levels(k)``: ``k`` coarse values for grid search (bin centres of the encoding, so no level sits on an
  extreme edge of the range);
- ``suggest(trial)``: the matching ``optuna`` distribution;
- ``default``: the baseline value (grid search holds the axes it does not sweep at their defaults).

Run ``python -m hw7_hpo.space`` to print the space and the default grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


def round_significant(x: float, digits: int = 2) -> float:
    """``x`` rounded to ``digits`` significant digits (so nearby log-scale genes decode to one config).

    >>> round_significant(0.0031622, 2)
    0.0032
    """
    if x == 0:
        return 0.0
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def _centre(i: int, k: int) -> float:
    """Centre of bin ``i`` of ``k`` equal bins of [0, 1]."""
    return (i + 0.5) / k


@dataclass(frozen=True)
class LogFloat:
    """A positive real searched on a log scale (learning rate, weight decay); 2 significant digits."""

    name: str
    low: float
    high: float
    default: float

    def decode(self, u: float) -> float:
        u = min(max(u, 0.0), 1.0)
        return round_significant(math.exp(math.log(self.low) + u * math.log(self.high / self.low)))

    def levels(self, k: int) -> tuple:
        return (self.default,) if k == 1 else tuple(self.decode(_centre(i, k)) for i in range(k))

    def suggest(self, trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=True)

    @property
    def size(self) -> float:
        return math.inf


@dataclass(frozen=True)
class Float:
    """A real on a linear scale with a step (dropout)."""

    name: str
    low: float
    high: float
    step: float
    default: float

    def decode(self, u: float) -> float:
        u = min(max(u, 0.0), 1.0)
        return round(self.low + round(u * (self.high - self.low) / self.step) * self.step, 10)

    def levels(self, k: int) -> tuple:
        return (self.default,) if k == 1 else tuple(self.decode(_centre(i, k)) for i in range(k))

    def suggest(self, trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, step=self.step)

    @property
    def size(self) -> int:
        return int(round((self.high - self.low) / self.step)) + 1


@dataclass(frozen=True)
class Choice:
    """One of a few ordered values (batch size, width) or labels (optimizer)."""

    name: str
    choices: tuple
    default: Any

    def decode(self, u: float):
        return self.choices[min(int(min(max(u, 0.0), 1.0) * len(self.choices)), len(self.choices) - 1)]

    def levels(self, k: int) -> tuple:
        if k == 1:
            return (self.default,)
        n = len(self.choices)
        return tuple(self.choices[min(int(_centre(i, k) * n), n - 1)] for i in range(min(k, n)))

    def suggest(self, trial):
        return trial.suggest_categorical(self.name, list(self.choices))

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class Int:
    """An integer range (depth)."""

    name: str
    low: int
    high: int
    default: int

    def decode(self, u: float) -> int:
        return min(self.low + int(min(max(u, 0.0), 1.0) * (self.high - self.low + 1)), self.high)

    def levels(self, k: int) -> tuple:
        return (self.default,) if k == 1 else tuple(sorted({self.decode(_centre(i, k)) for i in range(k)}))

    def suggest(self, trial) -> int:
        return trial.suggest_int(self.name, self.low, self.high)

    @property
    def size(self) -> int:
        return self.high - self.low + 1


Param = LogFloat | Float | Choice | Int

# The one search space of the homework (hw7.P5). Defaults are the baseline config: AdamW at 1e-3 is the
# usual safe starting point for a small MLP; width 128 x depth 2 fits digits and MNIST comfortably.
SEARCH_SPACE: tuple[Param, ...] = (
    LogFloat("lr", 1e-4, 3e-1, default=1e-3),
    Choice("batch_size", (32, 64, 128, 256), default=64),
    Choice("width", (32, 64, 128, 256, 512), default=128),
    Int("depth", 1, 3, default=2),
    Float("dropout", 0.0, 0.5, step=0.05, default=0.1),
    LogFloat("weight_decay", 1e-6, 1e-1, default=1e-4),
    Choice("optimizer", ("adamw", "sgd"), default="adamw"),
)

# Grid search sweeps only these axes, most important first (learning rate dominates for an MLP; width and
# depth set capacity; dropout regularises); the rest stay at their defaults.
GRID_AXES: tuple[str, ...] = ("lr", "width", "depth", "dropout")


def default_config(space: Sequence[Param] = SEARCH_SPACE) -> dict:
    """The baseline configuration: every parameter at its default."""
    return {p.name: p.default for p in space}


def decode(genes: Sequence[float], space: Sequence[Param] = SEARCH_SPACE) -> dict:
    """A config from one gene in [0, 1] per parameter (genes in the order of ``space``)."""
    if len(genes) != len(space):
        raise ValueError(f"expected {len(space)} genes (one per parameter), got {len(genes)}")
    return {p.name: p.decode(float(u)) for p, u in zip(space, genes)}


def config_key(config: Mapping[str, Any]) -> str:
    """A canonical string for a config (fitness-cache key, resume key)."""
    return ";".join(f"{k}={config[k]!r}" for k in sorted(config))


def grid_levels(num_configs: int, space: Sequence[Param] = SEARCH_SPACE,
                axes: Sequence[str] = GRID_AXES) -> dict[str, int]:
    """Levels per grid axis so that the grid has at most ``num_configs`` points.

    Round-robin over ``axes`` in priority order, adding a level to an axis while the product of levels stays
    within ``num_configs`` (and the axis has values left). The grid's curse of dimensionality is visible
    here: each extra axis multiplies the cost, so a fixed budget buys few levels per axis.

    >>> grid_levels(30)
    {'lr': 3, 'width': 2, 'depth': 2, 'dropout': 2}
    """
    by_name = {p.name: p for p in space}
    levels = {name: 1 for name in axes}
    grown = True
    while grown:
        grown = False
        for name in axes:
            total = math.prod(levels.values())
            grown_total = total // levels[name] * (levels[name] + 1)
            if levels[name] < by_name[name].size and grown_total <= num_configs:
                levels[name] += 1
                grown = True
    return levels


def grid_configs(num_configs: int, space: Sequence[Param] = SEARCH_SPACE,
                 axes: Sequence[str] = GRID_AXES) -> list[dict]:
    """The coarse grid (at most ``num_configs`` configs), non-swept axes at their defaults.

    The learning rate varies slowest (the order in which the grid is trained).
    """
    by_name = {p.name: p for p in space}
    levels = grid_levels(num_configs, space, axes)
    configs = [default_config(space)]
    for name in axes:
        values = by_name[name].levels(levels[name])
        configs = [{**c, name: v} for c in configs for v in values]
    return configs


def describe(space: Sequence[Param] = SEARCH_SPACE) -> list[dict]:
    """One row per parameter for tables: name, kind, range or choices, default."""
    rows = []
    for p in space:
        if isinstance(p, Choice):
            domain = ", ".join(str(c) for c in p.choices)
        elif isinstance(p, Float):
            domain = f"[{p.low}, {p.high}] step {p.step}"
        else:
            domain = f"[{p.low:g}, {p.high:g}]"
        rows.append({"name": p.name, "kind": type(p).__name__, "domain": domain, "default": p.default})
    return rows


if __name__ == "__main__":
    from common import markdown_table

    print(markdown_table(describe()))
    print(f"\ngrid for 30 configs: {grid_levels(30)} -> {len(grid_configs(30))} configs")
