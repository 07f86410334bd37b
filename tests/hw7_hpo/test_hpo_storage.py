"""Storage helpers: password redaction, and recovery of a dead worker's trial on a journal file (Optuna 5 has
no heartbeat for JournalStorage; hw7_hpo.storage gives it the same rule through the public API)."""
from __future__ import annotations

import time

import optuna
import pytest

from hw7_hpo.space import SEARCH_SPACE
from hw7_hpo.storage import (ALIVE_ATTR, EPOCH_CAP_ATTR, GRACE_PERIOD_S, fail_stale_trials, open_storage, redact,
                             retried_trial_number)


@pytest.mark.parametrize("text, secret", [
    ("postgresql://me:pa55word@db:5432/hpo", "pa55word"),
    ("postgresql+psycopg2://me:p%40ss@db/hpo?sslmode=require", "p%40ss"),
    ("postgresql://me@db/hpo?sslmode=require&password=pa55word", "pa55word"),
    ("cannot reach --storage mysql://root:toor@h/db (Error: PASSWORD=toor)", "toor"),
])
def test_redact_hides_every_password_spelling(text, secret):
    assert secret not in redact(text) and "***" in redact(text)


def test_redact_leaves_urls_without_password_alone():
    for url in ("sqlite:////tmp/x.db", "journal:///a/b.log", "postgresql://me@db/hpo"):
        assert redact(url) == url


def _dead_trial(study: optuna.Study, drawn: bool, beat_age: float) -> int:
    trial = study.ask()
    space = SEARCH_SPACE if drawn else SEARCH_SPACE[:2]
    for p in space:
        p.suggest(trial)
    if drawn:
        trial.set_user_attr(EPOCH_CAP_ATTR, 2)
    trial.set_user_attr(ALIVE_ATTR, time.time() - beat_age)
    return trial.number


def test_a_stale_journal_trial_is_failed_and_its_whole_config_queued_once(tmp_path):
    storage = open_storage(f"journal:///{tmp_path / 'study.log'}")
    study = optuna.create_study(study_name="j", storage=storage, direction="maximize")
    stale = _dead_trial(study, drawn=True, beat_age=GRACE_PERIOD_S + 5)
    partial = _dead_trial(study, drawn=False, beat_age=GRACE_PERIOD_S + 5)
    alive = _dead_trial(study, drawn=True, beat_age=1)
    fail_stale_trials(study, storage)
    fail_stale_trials(study, storage)  # a second pass (another worker) changes nothing
    trials = {t.number: t for t in optuna.load_study(study_name="j", storage=open_storage(
        f"journal:///{tmp_path / 'study.log'}")).get_trials(deepcopy=False)}
    assert trials[stale].state == trials[partial].state == optuna.trial.TrialState.FAIL
    assert trials[alive].state == optuna.trial.TrialState.RUNNING
    retries = [t for t in trials.values() if retried_trial_number(t) is not None]
    assert len(retries) == 1 and retried_trial_number(retries[0]) == stale
    assert retries[0].state == optuna.trial.TrialState.WAITING and retries[0].params == trials[stale].params


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_trial_that_never_beat_is_failed_once_older_than_the_grace_period(kind, tmp_path):
    """A worker killed between ``study.ask`` and its heartbeat's first write leaves a running trial with no
    heartbeat at all; Optuna never calls it stale, so a resumed study waited for it forever (seen in CI)."""
    url = (f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else f"journal:///{tmp_path / 'study.log'}")
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    for p in SEARCH_SPACE:
        p.suggest(trial)
    trial.set_user_attr(EPOCH_CAP_ATTR, 2)
    fail_stale_trials(study, storage)  # just started: a live worker may not have beaten yet
    assert study.get_trials(deepcopy=False)[trial.number].state == optuna.trial.TrialState.RUNNING
    time.sleep(0.05)
    fail_stale_trials(study, storage, grace_s=0.01)
    fail_stale_trials(study, storage, grace_s=0.01)  # a second pass (another worker) changes nothing
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).get_trials(deepcopy=False)
    assert trials[trial.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if retried_trial_number(t) is not None]
    assert len(retries) == 1 and retried_trial_number(retries[0]) == trial.number
    assert retries[0].state == optuna.trial.TrialState.WAITING and retries[0].params == trials[trial.number].params
