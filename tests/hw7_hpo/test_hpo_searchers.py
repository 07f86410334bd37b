"""Each searcher on a tiny real budget: the shared result record, equal-budget accounting, pruning, the GA's
fitness cache and elitism, resume after a crash, and divergence (NaN loss) handling."""
from __future__ import annotations

import optuna
import pytest

from hw7_hpo.genetic import GAConfig, genetic_search, make_toolbox
from hw7_hpo.grid import grid_search
from hw7_hpo.objective import Objective
from hw7_hpo.optuna_search import optuna_search
from hw7_hpo.random_search import random_search
from hw7_hpo.records import MethodResult, TrialLog
from hw7_hpo.runner import TrialRunner
from hw7_hpo.space import SEARCH_SPACE, LogFloat, config_key, default_config, grid_configs

BUDGET = 12  # epochs: 6 full trials of 2 epochs


def run(method: str, objective, budget: int = BUDGET, **kw) -> MethodResult:
    if method == "grid":
        return grid_search(objective, budget, progress=False, **kw)
    if method == "random":
        return random_search(objective, budget, seed=0, progress=False, **kw)
    if method == "ga":
        return genetic_search(objective, budget, seed=0, progress=False,
                              cfg=GAConfig(population_size=4, elite=1), **kw)
    return optuna_search(objective, budget, method=method, seed=0, progress=False, **kw)


def check_record(result: MethodResult, objective) -> None:
    assert result.trials, "no trial ran"
    assert 0.0 < result.best_val_acc <= 1.0
    assert 0.0 < result.test_acc <= 1.0
    assert result.best_config is not None and set(result.best_config) == {p.name for p in SEARCH_SPACE}
    assert result.wall_seconds > 0 and result.train_seconds > 0
    assert all(1 <= t.epochs <= objective.max_epochs for t in result.trials)
    epochs, best = result.curve()
    assert epochs == sorted(epochs) and epochs[-1] == result.epochs
    finite = [b for b in best if b == b]
    assert finite == sorted(finite) and finite[-1] == result.best_val_acc
    as_dict = result.to_dict()
    expected = {"best_config", "best_val_acc", "test_acc", "epochs", "wall_seconds", "trials", "curve"}
    assert expected <= set(as_dict)


@pytest.mark.parametrize("method", ["random", "optuna", "optuna-hyperband", "tpe", "ga"])
def test_searcher_spends_exactly_the_epoch_budget(method, objective):
    result = run(method, objective)
    check_record(result, objective)
    assert result.epochs == BUDGET


def test_grid_spends_whole_levels_only(objective):
    result = run("grid", objective, budget=13)  # 6 full trials fit; the 13th epoch cannot buy a grid point
    check_record(result, objective)
    assert len(result.trials) == len(grid_configs(6))
    assert result.epochs == 2 * len(result.trials) <= 13
    assert [t.config for t in result.trials] == grid_configs(6)


def test_last_trial_is_shortened_to_fit_the_budget(objective):
    result = random_search(objective, 5, seed=0, progress=False)
    assert [t.epochs for t in result.trials] == [2, 2, 1]


def test_pruning_buys_more_trials_for_the_same_epochs(objective):
    pruned = run("optuna", objective, budget=40)
    unpruned = run("tpe", objective, budget=40)
    assert pruned.epochs == unpruned.epochs == 40
    assert pruned.counts()["pruned"] > 0 and unpruned.counts()["pruned"] == 0
    assert len(pruned.trials) > len(unpruned.trials) == 20
    assert all(t.epochs < objective.max_epochs for t in pruned.trials if t.status == "pruned")


def test_runner_cache_does_not_retrain_a_repeated_config(objective):
    runner = TrialRunner("x", objective, 10, progress=False)
    first = runner.evaluate(default_config())
    spent = runner.spent
    again = runner.evaluate(dict(default_config()))
    assert again is first and runner.spent == spent == 2 and runner.cache_hits == 1


def test_ga_uses_a_deap_toolbox_never_retrains_and_keeps_its_elite(objective):
    toolbox = make_toolbox(len(SEARCH_SPACE), GAConfig())
    for name in ("individual", "population", "mate", "mutate", "select"):
        assert hasattr(toolbox, name)
    result = run("ga", objective, budget=30)
    keys = [config_key(t.config) for t in result.trials]
    assert len(keys) == len(set(keys)), "a repeated individual was trained twice"
    generations = result.extra["generations"]
    assert len(generations) >= 3
    complete = [g for g in generations[:-1]]  # the last one may be cut short by the budget
    bests = [g["best"] for g in complete]
    assert bests == sorted(bests), "elitism must keep the best fitness from one generation to the next"


def test_each_trial_is_reproducible(objective):
    a = objective(default_config())
    b = objective(default_config())
    assert a.val_curve == b.val_curve and a.test_acc == b.test_acc


class CrashAfter:
    """An objective that dies after ``n`` trainings (a stand-in for a kill between trials)."""

    def __init__(self, objective: Objective, n: int):
        self.objective, self.n, self.calls = objective, n, 0
        self.max_epochs = objective.max_epochs

    def __call__(self, *args, **kwargs):
        if self.calls == self.n:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return self.objective(*args, **kwargs)


@pytest.mark.parametrize("method", ["grid", "random", "ga"])
def test_rerun_after_a_crash_resumes_from_the_log(method, objective, tmp_path):
    budget = 16
    reference = run(method, objective, budget=budget)
    log = TrialLog(tmp_path / f"{method}.jsonl")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(method, CrashAfter(objective, 3), budget=budget, log=log)
    kept = log.load()
    assert len(kept) == 3
    counting = CrashAfter(objective, 10**6)
    resumed = run(method, counting, budget=budget, log=TrialLog(log.path))
    assert resumed.extra["resumed_trials"] == 3
    assert counting.calls == len(reference.trials) - 3, "recorded trials must not be retrained"
    assert [t.to_dict() for t in resumed.trials[:3]] == [t.to_dict() for t in kept]
    scores = lambda result: [(t.config, t.val_acc) for t in result.trials]  # noqa: E731
    assert scores(resumed) == scores(reference)
    assert resumed.epochs == reference.epochs


def test_torn_last_line_of_a_log_is_dropped_and_repaired(objective, tmp_path):
    log = TrialLog(tmp_path / "random.jsonl")
    random_search(objective, 4, seed=0, log=log, progress=False)
    with open(log.path, "a", encoding="utf-8") as fh:
        fh.write('{"method": "random", "numb')  # a kill in the middle of a write
    assert len(log.load()) == 2
    assert log.path.read_text(encoding="utf-8").endswith("\n")


def test_optuna_resumes_from_storage_without_losing_trials(objective, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna_search(objective, 8, storage=url, study_name="s", progress=False)
    second = optuna_search(objective, 16, storage=url, study_name="s", progress=False)
    before = {t.number: (t.val_curve, t.status) for t in first.trials}
    after = {t.number: (t.val_curve, t.status) for t in second.trials}
    assert all(after[n] == v for n, v in before.items())
    assert first.epochs == 8 and second.epochs == 16


def test_diverged_trial_is_failed_and_the_study_goes_on(objective, tmp_path):
    outcome = objective({**default_config(), "lr": 1e3, "optimizer": "sgd"})
    assert outcome.status == "diverged" and outcome.val_acc is None and "diverged" in outcome.error
    assert outcome.epochs == len(outcome.val_curve) + 1  # the epoch that blew up is charged

    url = f"sqlite:///{tmp_path / 'nan.db'}"
    study = optuna.create_study(study_name="nan", storage=url, direction="maximize")
    study.enqueue_trial({**default_config(), "lr": 1e3, "optimizer": "sgd"})  # diverges in epoch 1-2
    with pytest.warns(UserWarning, match="out of range"):
        result = optuna_search(objective, 10, storage=url, study_name="nan", progress=False)
    trials = optuna.load_study(study_name="nan", storage=url).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[0].user_attrs["outcome"]["status"] == "diverged"
    assert result.trials[0].status == "diverged" and result.trials[0].val_acc is None
    assert result.counts()["complete"] >= 3 and result.epochs == 10


def test_diverged_configs_score_zero_in_grid_random_and_ga(objective):
    space = (LogFloat("lr", 1e3, 1e4, default=2e3),) + tuple(p for p in SEARCH_SPACE if p.name != "lr")
    space = tuple(p if p.name != "optimizer" else type(p)("optimizer", ("sgd",), "sgd") for p in space)
    result = random_search(objective, 6, seed=0, space=space, progress=False)
    assert result.counts()["diverged"] == len(result.trials) >= 3
    assert result.best is None and result.best_val_acc is None and result.epochs == 6


def test_a_trial_killed_while_drawing_its_config_is_not_retried():
    """Each suggest_* is its own storage write: a worker killed mid-sampling leaves a partial config, which
    must not be queued again as if it were a config (the retry would sample the missing values afresh)."""
    from hw7_hpo.storage import EPOCH_CAP_ATTR, retried_trial_number, retry_callback

    study = optuna.create_study(direction="maximize")
    retry_trial = retry_callback()  # what the heartbeat calls for a stale trial
    partial = study.ask()
    for p in SEARCH_SPACE[:3]:
        p.suggest(partial)
    retry_trial(study, study.trials[partial.number])
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]

    whole = study.ask()
    for p in SEARCH_SPACE:
        p.suggest(whole)
    whole.set_user_attr(EPOCH_CAP_ATTR, 2)
    retry_trial(study, study.trials[whole.number])
    queued = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(queued) == 1 and retried_trial_number(queued[0]) == whole.number
    retry = study.ask()  # a worker picks the queued trial up and draws exactly the lost config
    assert retry.number == queued[0].number
    assert {p.name: p.suggest(retry) for p in SEARCH_SPACE} == study.trials[whole.number].params
