"""The search space as data: decoding, grid levels, Optuna distributions."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from hw7_hpo.space import (
    GRID_AXES,
    SEARCH_SPACE,
    Choice,
    Float,
    Int,
    LogFloat,
    config_key,
    decode,
    default_config,
    grid_configs,
    grid_levels,
)


def test_decode_stays_in_range_and_types_for_any_gene():
    rng = np.random.default_rng(0)
    n = len(SEARCH_SPACE)
    for genes in [np.zeros(n), np.ones(n), *rng.random((200, n))]:
        config = decode(genes)
        for p in SEARCH_SPACE:
            value = config[p.name]
            if isinstance(p, Choice):
                assert value in p.choices
            elif isinstance(p, Int):
                assert isinstance(value, int) and p.low <= value <= p.high
            else:
                assert isinstance(value, float) and p.low <= value <= p.high + 1e-12


def test_log_scale_decoding_puts_the_middle_gene_at_the_geometric_mean():
    lr = next(p for p in SEARCH_SPACE if p.name == "lr")
    assert isinstance(lr, LogFloat)
    assert lr.decode(0.5) == pytest.approx(math.sqrt(lr.low * lr.high), rel=0.02)  # 2 significant digits


def test_every_choice_is_reachable_by_some_gene():
    for p in SEARCH_SPACE:
        if isinstance(p, (Choice, Int)):
            reached = {p.decode(u) for u in np.linspace(0, 1, 101)}
            expected = set(p.choices) if isinstance(p, Choice) else set(range(p.low, p.high + 1))
            assert reached == expected


def test_defaults_lie_in_the_space():
    config = default_config()
    for p in SEARCH_SPACE:
        if isinstance(p, Choice):
            assert config[p.name] in p.choices
        else:
            assert p.low <= config[p.name] <= p.high


@pytest.mark.parametrize("num_configs", [1, 2, 7, 12, 27, 30, 100])
def test_grid_never_exceeds_the_configs_the_budget_pays_for(num_configs):
    configs = grid_configs(num_configs)
    assert 1 <= len(configs) <= num_configs
    assert len({config_key(c) for c in configs}) == len(configs)  # no duplicate points
    swept = {name for name, k in grid_levels(num_configs).items() if k > 1}
    for p in SEARCH_SPACE:  # axes not swept stay at the baseline value
        if p.name not in swept:
            assert {c[p.name] for c in configs} == {p.default}


def test_grid_sweeps_the_learning_rate_first():
    assert GRID_AXES[0] == "lr"
    assert grid_levels(2) == {"lr": 2, "width": 1, "depth": 1, "dropout": 1}
    assert grid_levels(30) == {"lr": 3, "width": 2, "depth": 2, "dropout": 2}


def test_grid_levels_avoid_the_range_edges():
    lr = next(p for p in SEARCH_SPACE if p.name == "lr")
    levels = lr.levels(3)
    assert lr.low < min(levels) and max(levels) < lr.high
    assert sorted(levels) == list(levels)


def test_optuna_suggestions_match_the_space():
    def objective(trial):
        config = {p.name: p.suggest(trial) for p in SEARCH_SPACE}
        assert set(config) == {p.name for p in SEARCH_SPACE}
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=20)
    for p in SEARCH_SPACE:
        dist = study.trials[0].distributions[p.name]
        if isinstance(p, LogFloat):
            assert dist.log and (dist.low, dist.high) == (p.low, p.high)
        elif isinstance(p, Float):
            assert dist.step == p.step
        elif isinstance(p, Choice):
            assert tuple(dist.choices) == p.choices


def test_config_key_is_order_independent():
    a = default_config()
    b = dict(reversed(list(a.items())))
    assert config_key(a) == config_key(b)
    assert config_key(a) != config_key({**a, "lr": 0.002})
