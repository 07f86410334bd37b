"""Optuna TPE with per-epoch pruning, in real storage, resumable and shared by worker processes/machines.

Methods (one study each, named ``<study-name>-<method>``):

- ``optuna``: TPE + ``MedianPruner`` (stop a trial whose accuracy at epoch t is below the median of earlier
  trials at epoch t);
- ``optuna-hyperband``: TPE + ``HyperbandPruner`` (successive halving over several brackets);
- ``tpe``: TPE without pruning, the ablation that shows what pruning saves.

Each epoch the objective calls ``trial.report(val_acc, epoch)`` and ``trial.should_prune()``; a pruned
trial raises ``optuna.TrialPruned`` from that per-epoch callback, straight through ``common.fit``.

Budget in storage: a trial records ``epoch_cap`` (its reservation) when it starts and an ``outcome``
(status, epochs trained, test accuracy...) when it ends. A new trial may train
``min(max_epochs, budget - finished epochs - caps of running trials numbered before it)``; trials are
numbered by the storage, so concurrent workers on any number of machines never overrun the budget together.
A diverged trial (NaN loss) is stored as ``FAIL`` with its epochs charged; the study goes on. A trial of a
killed worker has no ``outcome``: it costs nothing, and the heartbeat (:mod:`hw7_hpo.storage`) fails it and
queues its config once more.

Worker processes (``workers > 1``) die with their parent (``common.cli.die_with_parent``); a worker killed on
its own is reported in one line while the others finish the budget.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import optuna
import torch
from optuna.trial import TrialState

from common import UserError, torch_threads
from common.cli import die_with_parent, end_now, one_line

from .objective import STATUSES, DataSpec, Objective
from .records import MethodResult, TrialRecord
from .runner import epoch_bar
from .space import SEARCH_SPACE, Param
from .storage import EPOCH_CAP_ATTR, fail_stale_trials, journal_heartbeat, open_storage, redact, worker_id

PRUNERS = {"optuna": "median", "optuna-hyperband": "hyperband", "tpe": "none"}
POLL_S = 0.5


class StudyMismatchError(UserError, ValueError):
    """The named study exists in the storage but was made with other settings."""


class WorkerError(UserError, RuntimeError):
    """Worker processes died before the study's budget was spent (what they finished is kept)."""


@contextlib.contextmanager
def optuna_quiet():
    """Optuna's logger at ERROR while a search runs: a diverged trial (stored as FAIL with value NaN) and a
    trial interrupted by Ctrl-C would each log a WARNING, the latter with a full traceback; both are already
    reported by this package (as ``diverged`` records, and as run_cli's one line)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


@dataclass(frozen=True)
class OptunaSettings:
    """Sampler and pruner settings, sized for budgets of ~30 full trials."""

    tpe_startup_trials: int = 6  # random proposals before TPE models the history
    median_startup_trials: int = 3  # complete trials before the median pruner may prune
    median_warmup_epochs: int = 1  # epochs are reported as steps 1, 2, ...: pruning may start after epoch 1
    hyperband_reduction: int = 3


def make_pruner(method: str, max_epochs: int, settings: OptunaSettings) -> optuna.pruners.BasePruner:
    kind = PRUNERS[method]
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.median_startup_trials,
                                           n_warmup_steps=settings.median_warmup_epochs)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs,
                                              reduction_factor=settings.hyperband_reduction)
    return optuna.pruners.NopPruner()


def make_sampler(seed: int, settings: OptunaSettings) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.tpe_startup_trials,
                                          multivariate=True, constant_liar=True)


def study_identity(method: str, max_epochs: int, seed: int, data: DataSpec | str) -> dict:
    """What makes two runs of a study the same experiment (not the data path: machines sharing a study
    may mount the data in different places)."""
    described = {k: v for k, v in asdict(data).items() if k != "root"} if isinstance(data, DataSpec) else data
    return {"method": method, "max_epochs": max_epochs, "seed": seed, "data": described}


def check_study(storage, study_name: str, identity: dict) -> None:
    """Raise :class:`StudyMismatchError` if ``study_name`` exists in ``storage`` with another identity."""
    if study_name not in optuna.study.get_all_study_names(storage):
        return
    stored = optuna.load_study(study_name=study_name, storage=storage).user_attrs.get("identity")
    if stored is not None and stored != identity:
        raise StudyMismatchError(f"study {study_name!r} in the storage was made with other settings "
                                 f"({stored}); use another --study-name or the same flags.")


def open_study(method: str, storage, study_name: str, *, seed: int, max_epochs: int, identity: dict,
               settings: OptunaSettings = OptunaSettings(), worker_index: int = 0) -> optuna.Study:
    """Create or load the study; its sampler is seeded from ``seed``, the worker and the trials so far
    (a resumed or parallel worker must not replay the same random proposals)."""
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize",
                                load_if_exists=True)
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif stored != identity:
        raise StudyMismatchError(f"study {study_name!r} in the storage was made with other settings "
                                 f"({stored}); use another --study-name or the same flags.")
    n_before = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(seed + 7919 * n_before + 104729 * worker_index, settings)
    study.pruner = make_pruner(method, max_epochs, settings)
    return study


def outcome_of(trial: optuna.trial.FrozenTrial) -> dict:
    """The ``outcome`` user attribute a trial writes when it ends (empty while running or if killed)."""
    return trial.user_attrs.get("outcome") or {}


def charged_epochs(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs a finished trial cost: complete/pruned, or FAIL by divergence; a killed trial costs 0."""
    outcome = outcome_of(trial)
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            trial.state == TrialState.FAIL and outcome.get("status") == "diverged"):
        return int(outcome.get("epochs", 0))
    return 0


def reservation(trial: optuna.trial.FrozenTrial, max_epochs: int) -> int:
    """Epochs a running trial may still use: its ``epoch_cap``; ``max_epochs`` while a live worker has not
    written it yet; 0 for a trial no worker ever claimed (killed at birth; reaped later)."""
    if "worker" not in trial.user_attrs:
        return 0
    return int(trial.user_attrs.get(EPOCH_CAP_ATTR, max_epochs))


def epochs_used(trials: Sequence[optuna.trial.FrozenTrial], max_epochs: int,
                before: int | None = None) -> int:
    """Finished epochs plus reservations of running trials (only those numbered below ``before``)."""
    used = 0
    for t in trials:
        if t.state == TrialState.RUNNING:
            if before is None or t.number < before:
                used += reservation(t, max_epochs)
        else:
            used += charged_epochs(t)
    return used


def epochs_done(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
    """Epochs trained so far, running trials included (progress display)."""
    return sum(charged_epochs(t) if t.state != TrialState.RUNNING else len(t.intermediate_values)
               for t in trials)


def make_objective(study: optuna.Study, storage, objective: Objective, budget_epochs: int,
                   space: Sequence[Param] = SEARCH_SPACE, bar=None):
    """The ``trial -> val_acc`` function handed to ``study.optimize`` (``storage``: the study's storage)."""

    def optuna_objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        with journal_heartbeat(trial, storage):
            return _train_trial(trial, study, objective, budget_epochs, space, bar)

    return optuna_objective


def _train_trial(trial: optuna.Trial, study: optuna.Study, objective: Objective, budget_epochs: int,
                 space: Sequence[Param], bar) -> float:
    config = {p.name: p.suggest(trial) for p in space}
    used = epochs_used(study.get_trials(deepcopy=False), objective.max_epochs, before=trial.number)
    cap = min(objective.max_epochs, budget_epochs - used)
    trial.set_user_attr(EPOCH_CAP_ATTR, max(cap, 0))  # also marks the config as fully drawn
    if cap <= 0:  # only when parallel workers raced for the last epochs
        trial.set_user_attr("outcome", {"status": "skipped", "epochs": 0})
        raise optuna.TrialPruned("epoch budget exhausted")
    curve: list[float] = []
    tic = time.perf_counter()

    def on_epoch(epoch: int, val_acc: float) -> None:
        curve.append(val_acc)
        trial.report(val_acc, epoch)
        if bar is not None:
            bar.update(1)
        if epoch < cap and trial.should_prune():  # after the last epoch there is nothing to save
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    try:
        outcome = objective(config, max_epochs=cap, on_epoch=on_epoch)
    except optuna.TrialPruned:
        best = max(range(len(curve)), key=curve.__getitem__)
        trial.set_user_attr("outcome", {"status": "pruned", "epochs": len(curve), "test_acc": None,
                                        "best_epoch": best + 1, "seconds": time.perf_counter() - tic,
                                        "error": ""})
        raise
    # one write for the whole outcome (every storage write is a commit)
    trial.set_user_attr("outcome", {key: getattr(outcome, key) for key in
                                    ("status", "epochs", "test_acc", "best_epoch", "seconds", "error")})
    if outcome.status == "diverged":
        if bar is not None:
            bar.update(1)
        return float("nan")  # Optuna stores the trial as FAIL; the search goes on
    return outcome.val_acc


def run_worker(study: optuna.Study, storage, objective: Objective, budget_epochs: int,
               space: Sequence[Param] = SEARCH_SPACE, bar=None) -> None:
    """Run trials one at a time until the study's epoch budget is spent (waiting for running trials: a
    live one may hand back unused epochs, a dead one is failed once its heartbeat is stale)."""
    fn = make_objective(study, storage, objective, budget_epochs, space, bar)
    while True:
        fail_stale_trials(study, storage)
        trials = study.get_trials(deepcopy=False)
        if epochs_used(trials, objective.max_epochs) >= budget_epochs:
            if any(t.state == TrialState.RUNNING and reservation(t, objective.max_epochs) for t in trials):
                time.sleep(POLL_S)
                continue
            return
        study.optimize(fn, n_trials=1)


@dataclass(frozen=True)
class WorkerJob:
    """Everything a spawned worker process needs (picklable)."""

    method: str
    storage_url: str
    study_name: str
    data: DataSpec
    max_epochs: int
    seed: int
    budget_epochs: int
    identity: dict
    settings: OptunaSettings
    worker_index: int
    device: str | None = None
    threads: int = 1


def worker_main(job: WorkerJob) -> None:
    """Entry point of one worker process: die with the parent, load the data, open the study, run trials.
    Ctrl-C (exit code 130) and SIGTERM (sent when the parent dies, or by the parent's ``terminate``) end it at
    once and silently (the parent prints the one line); an error the user can fix is one line and exit code 2."""
    worker_signals()
    # tqdm (common.fit's bar, even disabled) would create a multiprocessing lock, i.e. a named semaphore that
    # a worker killed with SIGKILL cannot release: the resource tracker then warns at shutdown. A worker draws
    # no bars of its own, so a thread lock is enough.
    import threading

    from tqdm import tqdm as std_tqdm

    std_tqdm.set_lock(threading.RLock())
    try:
        with optuna_quiet(), torch_threads(job.threads):
            objective = Objective(job.data.load(), job.max_epochs, seed=job.seed, device=job.device)
            storage = open_storage(job.storage_url)
            study = open_study(job.method, storage, job.study_name, seed=job.seed, max_epochs=job.max_epochs,
                               identity=job.identity, settings=job.settings, worker_index=job.worker_index)
            run_worker(study, storage, objective, job.budget_epochs)
    except UserError as err:
        print(f"hw7_hpo worker {job.worker_index}: error: {redact(one_line(err))}", file=sys.stderr)
        end_now(2)  # not sys.exit: it would wait for a heartbeat thread that may never stop (see _end_now)


def worker_signals() -> None:
    """A worker ends at once on Ctrl-C (SIGINT) and SIGTERM, and gets SIGTERM when its parent dies."""
    signal.signal(signal.SIGINT, _end_now)
    signal.signal(signal.SIGTERM, _end_now)
    die_with_parent(signal.SIGTERM)


def _end_now(signum, frame):
    """Ctrl-C or SIGTERM in a worker (its parent died via ``PR_SET_PDEATHSIG``, or is stopping it). Nobody
    waits for a graceful end, and a ``KeyboardInterrupt`` raised at an arbitrary point misbehaves: inside
    ``Thread.start`` it leaves Optuna's non-daemon heartbeat thread running forever, and inside a weakref
    callback it is swallowed with a traceback on stderr (seen in a test run). So the worker ends at once.
    SQLite and PostgreSQL roll back what was not committed; the running trial keeps no outcome, so it is
    never charged, and its stale (or missing) heartbeat has it re-run when the study resumes."""
    os._exit(128 + signum)


def study_result(method: str, study: optuna.Study, budget_epochs: int, wall_seconds: float = 0.0,
                 **extra) -> MethodResult:
    """The study's finished trials as a :class:`MethodResult` (in completion order)."""
    records = []
    for t in study.get_trials(deepcopy=False):
        outcome = outcome_of(t)
        status = outcome.get("status")
        if t.state == TrialState.RUNNING or status not in STATUSES or charged_epochs(t) == 0:
            continue  # running, killed (re-queued) or skipped
        curve = tuple(t.intermediate_values[k] for k in sorted(t.intermediate_values))
        val_acc = t.value if t.state == TrialState.COMPLETE else (
            max(curve) if status == "pruned" and curve else None)  # diverged: no score, as in TrialOutcome
        finished = t.datetime_complete.timestamp() if t.datetime_complete else 0.0
        records.append(TrialRecord(method, t.number, dict(t.params), status, charged_epochs(t), val_acc,
                                   outcome.get("test_acc"), outcome.get("best_epoch"),
                                   float(outcome.get("seconds", 0.0)), curve, finished,
                                   outcome.get("error", "")))
    records.sort(key=lambda r: (r.finished, r.number))
    return MethodResult(method, records, budget_epochs, wall_seconds,
                        {"study_name": study.study_name, "pruner": PRUNERS.get(method), **extra})


def optuna_search(objective: Objective, budget_epochs: int, *, method: str = "optuna",
                  storage: str | None = None, study_name: str | None = None, seed: int = 0, workers: int = 1,
                  data: DataSpec | None = None, settings: OptunaSettings = OptunaSettings(),
                  progress: bool | None = None, space: Sequence[Param] = SEARCH_SPACE,
                  extra_identity: dict | None = None) -> MethodResult:
    """Run (or resume) the ``method`` study until ``budget_epochs`` epochs are consumed.

    ``storage`` is a URL (see :mod:`hw7_hpo.storage`; ``None`` keeps the study in memory, one worker only).
    ``workers > 1`` spawns that many processes, each loading ``data`` and running trials against the storage.
    ``extra_identity``: more settings the stored study must match (the CLI adds its budget).
    """
    extra_identity = dict(extra_identity or {})
    if method not in PRUNERS:
        raise ValueError(f"unknown Optuna method {method!r}; choose one of {', '.join(PRUNERS)}.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and (storage is None or data is None):
        raise ValueError("workers > 1 needs a storage URL and a DataSpec (each worker loads its own data).")
    study_name = study_name or f"hpo-{method}"
    identity = {**study_identity(method, objective.max_epochs, objective.seed,
                                 data if data is not None else objective.splits.summary()), **extra_identity}
    tic = time.perf_counter()
    with optuna_quiet():
        backend = open_storage(storage) if storage is not None else optuna.storages.InMemoryStorage()
        study = open_study(method, backend, study_name, seed=seed, max_epochs=objective.max_epochs,
                           identity=identity, settings=settings)
        bar = epoch_bar(method, budget_epochs, epochs_done(study.get_trials(deepcopy=False)), progress)
        lost: list[str] = []
        try:
            if workers == 1:
                run_worker(study, backend, objective, budget_epochs, space, bar)
            else:
                lost = _run_processes(study, objective, budget_epochs, method, storage, study_name, seed,
                                      workers, data, identity, settings, bar)
        finally:
            bar.close()
    return study_result(method, study, budget_epochs, time.perf_counter() - tic,
                        storage=redact(storage) if storage is not None else None, workers=workers,
                        lost_workers=lost, settings=settings.__dict__)


def _run_processes(study, objective, budget_epochs, method, storage, study_name, seed, workers, data,
                   identity, settings, bar) -> list[str]:
    """Spawn ``workers`` processes on the storage and show their joint progress until all exit. A worker
    that dies (``kill -9``) is reported in one line; the others finish the budget (the dead worker's trial is
    re-run once its heartbeat is stale). Returns the lines; raises :class:`WorkerError` if the budget was not
    spent, and on Ctrl-C stops every worker before re-raising."""
    threads = max(1, torch.get_num_threads() // workers)
    device = str(objective.device) if objective.device is not None else None
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    jobs = [WorkerJob(method, storage, study_name, data, objective.max_epochs, seed, budget_epochs, identity,
                      settings, i, device, threads) for i in range(workers)]
    procs = [ctx.Process(target=worker_main, args=(job,), daemon=True) for job in jobs]
    for p in procs:
        p.start()
    lost: list[str] = []
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(POLL_S)
            bar.n = min(epochs_done(study.get_trials(deepcopy=False)), bar.total)
            bar.refresh()
            for i, p in enumerate(procs):
                if p.exitcode is not None and p.exitcode != 0 and not any(f"worker {i} " in x for x in lost):
                    lost.append(_lost_line(i, p, [q for q in procs if q.exitcode is None]))
                    print(f"hw7_hpo: {lost[-1]}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        for p in procs:  # Ctrl-C in a terminal reached the workers too: they end at once
            p.join(timeout=10)
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker ends at once; its trial has no outcome (not charged)
                p.join(timeout=30)
        raise
    for p in procs:
        p.join()
    for i, p in enumerate(procs):
        if p.exitcode != 0 and not any(f"worker {i} " in x for x in lost):
            lost.append(_lost_line(i, p, []))
            print(f"hw7_hpo: {lost[-1]}", file=sys.stderr, flush=True)
    used = sum(charged_epochs(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING)
    if lost and used < budget_epochs:
        raise WorkerError(f"{len(lost)} of {workers} Optuna workers of study {study_name!r} died and "
                          f"{budget_epochs - used} of {budget_epochs} epochs are left; every finished trial "
                          f"is kept in the storage: rerun the same command to finish.")
    return lost


def _lost_line(index: int, proc, alive: list) -> str:
    code = proc.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    rest = (f"{len(alive)} other worker(s) go on and re-run its trial once its heartbeat is stale"
            if alive else "its trial is re-run when its heartbeat is stale")
    return f"worker {index} (pid {proc.pid}) {how}; {rest}."
