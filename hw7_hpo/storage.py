"""Where Optuna studies live: storage URLs, checks before any work, and recovery of a killed worker's trial.

Accepted ``--storage`` values:

- ``sqlite:///path/optuna.db`` (the default, in the output folder): an RDB file; fine for a few local
  worker processes (each connection waits up to 60 s for SQLite's write lock instead of failing);
- ``journal:///path/optuna.log``: Optuna's ``JournalStorage`` on a file, the storage Optuna recommends for
  many processes writing one file (append-only log with a file lock);
- ``postgresql://user:pass@host:port/db`` (or ``mysql://...``): an RDB server that several *machines* can
  share.

A killed worker (``kill -9``, a lost machine) leaves its trial ``RUNNING``. Recovery uses Optuna's own
heartbeat: every running trial records a heartbeat every ``HEARTBEAT_INTERVAL_S``; a trial whose heartbeat is
older than ``GRACE_PERIOD_S`` is failed by ``optuna.storages.fail_stale_trials`` (which ``study.optimize``
also calls before each trial), and ``RetryHeartbeatStaleTrialCallback(max_retry=1)`` queues its config once
more. A failed trial without an ``outcome`` is never charged to the budget (see ``optuna_search``).
RDB storages (SQLite, PostgreSQL, MySQL) have the heartbeat built in. ``JournalStorage`` has none in the
installed Optuna (5.0), so for it :func:`journal_heartbeat` writes the same signal as a user attribute from
a thread, and :func:`fail_stale_trials` fails stale trials with the public ``study.tell`` and queues them with
the same callback.

Every URL that reaches a message or a file goes through :func:`redact` (passwords in the user-info part and
in ``password=`` query parameters are hidden).
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

import optuna
from optuna.trial import TrialState

from common import CheckpointError, UserError, check_writable

HEARTBEAT_INTERVAL_S = 5
GRACE_PERIOD_S = 30  # six missed heartbeats: a live worker under heavy CPU load still writes one in time
SQLITE_LOCK_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 5
SERVER_SCHEMES = ("postgresql", "postgres", "mysql")
ALIVE_ATTR = "alive"  # journal storage: unix time of the trial's last heartbeat
# Written by the objective once a trial has drawn its whole config (every ``suggest_*`` call is its own
# storage write, so a worker killed while sampling leaves a trial with only part of a config): the epochs the
# trial may train, i.e. its reservation of the budget.
EPOCH_CAP_ATTR = "epoch_cap"


class StorageError(UserError, ValueError):
    """The storage URL is malformed, its folder unwritable, its file corrupt or its server unreachable."""


_USERINFO = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^/\s:@]*):[^@\s]*@")
_PASSWORD_PARAM = re.compile(r"(?i)(?P<key>\bpassword=)[^&\s'\"]*")


def redact(text: str) -> str:
    """``text`` (a URL, or a message that contains URLs) with every password hidden: ``user:***@`` and
    ``password=***``.

    >>> redact("postgresql://me:s3cret@db/hpo?sslmode=require&password=x")
    'postgresql://me:***@db/hpo?sslmode=require&password=***'
    """
    return _PASSWORD_PARAM.sub(r"\g<key>***", _USERINFO.sub(r"\g<head>:***@", str(text)))


def default_storage(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'optuna.db'}"


def scheme(url: str) -> str:
    """``sqlite``, ``journal``, ``postgresql``... (driver suffixes like ``+psycopg2`` dropped)."""
    return urlparse(url).scheme.split("+")[0].lower()


def storage_file(url: str) -> Path:
    """The file of a ``sqlite:///...`` or ``journal:///...`` URL."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path:
        raise StorageError(f"storage URL {redact(url)!r} names no file; write --storage as "
                           f"{scheme(url)}:///path/to/file (three slashes, then the path).")
    return Path(path).expanduser()  # sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy)


def check_storage(url: str, pending_dirs: tuple[Path, ...] = ()) -> None:
    """Raise :class:`StorageError` (one line, naming the fix) unless ``url`` can be opened and used.

    File storages need an existing, writable parent folder (or one in ``pending_dirs``, created by the caller
    after validation), and an existing file must be a readable storage; server storages must accept a
    connection within a few seconds. Creates nothing.
    """
    kind = scheme(url)
    if kind in ("sqlite", "journal"):
        file = storage_file(url)
        parent = file.resolve().parent
        pending = any(parent == Path(p).resolve() for p in pending_dirs)
        if not parent.is_dir() and not pending:
            what = "is a file, not a folder" if parent.exists() else "does not exist"
            raise StorageError(f"the folder {parent} of --storage {redact(url)!r} {what}; give --storage a path "
                               f"in an existing folder.")
        try:
            check_writable(file, "--storage")
        except UserError as err:
            raise StorageError(str(err)) from None
        if file.is_file():
            check_storage_file(url)
        return
    if kind not in SERVER_SCHEMES:
        raise StorageError(f"--storage {redact(url)!r} has an unknown scheme {kind!r}; use sqlite:///file.db, "
                           f"journal:///file.log or postgresql://user:password@host:port/database.")
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(normalize_url(url),
                                          connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # driver errors vary (psycopg2.OperationalError, ImportError, ArgumentError)
        reason = redact(" ".join(str(err).split())[:300])
        raise StorageError(f"cannot reach --storage {redact(url)} ({type(err).__name__}: {reason}); start the "
                           f"database server or fix --storage.") from None


def check_storage_file(url: str) -> None:
    """An existing SQLite or journal file must read as one (a truncated or foreign file is a one-line
    :class:`~common.CheckpointError` naming the file, not a traceback in the middle of the run)."""
    file = storage_file(url)
    fix = f"delete it (its finished trials are lost) or give --storage another file"
    if scheme(url) == "sqlite":
        try:
            with contextlib.closing(sqlite3.connect(f"file:{file.resolve()}?mode=ro", uri=True,
                                                    timeout=SQLITE_LOCK_TIMEOUT_S)) as con:
                status = con.execute("PRAGMA quick_check").fetchone()[0]
                if status == "ok" and file.stat().st_size:
                    con.execute("SELECT count(*) FROM trials").fetchone()
        except sqlite3.DatabaseError as err:
            raise CheckpointError(f"Optuna storage {file} is not a readable SQLite database ({err}); {fix}.") \
                from None
        if status != "ok":
            raise CheckpointError(f"Optuna storage {file} is damaged (SQLite: {status}); {fix}.")
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.study.get_all_study_names(open_storage(url))
    except Exception as err:  # the journal replay raises JSONDecodeError, KeyError, ... on garbage
        raise CheckpointError(f"Optuna journal {file} cannot be replayed ({type(err).__name__}); {fix}.") \
            from None


def normalize_url(url: str) -> str:
    """Name the installed PostgreSQL driver: SQLAlchemy 2.1 maps bare ``postgresql://`` to psycopg 3, while
    this project ships psycopg2 (``psycopg2-binary``); ``postgres://`` is accepted as an alias."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2" + url[len(parsed.scheme):]
        return "postgresql" + url[len(parsed.scheme):]
    return url


class RetryDrawnConfigs:
    """Optuna's ``RetryHeartbeatStaleTrialCallback(max_retry=1)`` (queue a stale trial's config once more; a
    retry that goes stale too is not retried again), for trials that had drawn their whole config. A trial
    killed mid-sampling holds part of a config: a retry would draw the rest afresh, i.e. be another config,
    and the lost trial cost nothing, so it is not queued."""

    def __init__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.params and EPOCH_CAP_ATTR in trial.user_attrs:
            self._retry(study, trial)


def retry_callback() -> RetryDrawnConfigs:
    return RetryDrawnConfigs()


def retried_trial_number(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the stale trial that ``trial`` repeats (``None`` for a first attempt)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage object for ``url`` (see the module docstring)."""
    kind = scheme(url)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(storage_file(url))))
    heartbeat = dict(heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S,
                     heartbeat_stale_trial_callback=retry_callback())
    with warnings.catch_warnings():  # the heartbeat arguments are flagged experimental (stable since 2.9)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "sqlite":
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}}, **heartbeat)
            _tune_sqlite(storage.engine)
            return storage
        return optuna.storages.RDBStorage(normalize_url(url), **heartbeat)


def has_builtin_heartbeat(storage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage)


def _is_journal(storage) -> bool:
    from optuna.storages.journal import JournalStorage

    return isinstance(storage, JournalStorage)


def fail_stale_trials(study: optuna.Study, storage, *, grace_s: float = GRACE_PERIOD_S) -> None:
    """Fail the trials of workers that stopped beating and queue their configs once more (see the module
    docstring): Optuna's own function on RDB storages, the same rule via ``study.tell`` on a journal.
    ``storage`` is the object ``study`` was opened on.

    Also failed: a running trial that never recorded a heartbeat and started more than ``grace_s`` ago.
    Optuna counts such a trial as never stale, but a worker killed between ``study.ask`` and its heartbeat
    thread's first write (under load the thread may not run before the worker's next few writes) leaves
    exactly that, and a resumed study would wait for it forever."""
    callback = retry_callback()
    if has_builtin_heartbeat(storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
            for trial_id in _never_beaten_trial_ids(storage, study._study_id, grace_s):
                try:
                    if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another worker failed it first (or it just finished)
                callback(study, storage.get_trial(trial_id))
        return
    if not _is_journal(storage):
        return  # in memory: one process, nothing to recover
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        alive = trial.user_attrs.get(ALIVE_ATTR)
        if alive is None:  # never beat: stale once it started more than grace_s ago
            alive = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - float(alive) <= grace_s:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another worker failed it first (or it just finished)
        callback(study, trial)


def _never_beaten_trial_ids(storage, study_id: int, grace_s: float) -> list[int]:
    """Running trials of an RDB storage that Optuna's own check skips: no heartbeat row at all, and started
    more than ``grace_s`` ago (``datetime_start`` is the asking client's local time, ``datetime.now()``)."""
    from datetime import datetime, timedelta

    from optuna.storages._rdb import models

    limit = datetime.now() - timedelta(seconds=grace_s)
    with storage.scoped_session() as session:
        running = (session.query(models.TrialModel)
                   .filter(models.TrialModel.state == TrialState.RUNNING)
                   .filter(models.TrialModel.study_id == study_id).all())
        return [t.trial_id for t in running
                if not t.heartbeats and t.datetime_start is not None and t.datetime_start < limit]


@contextlib.contextmanager
def journal_heartbeat(trial: optuna.Trial, storage):
    """While the block runs, record ``trial``'s heartbeat every ``HEARTBEAT_INTERVAL_S`` on a storage without
    Optuna's built-in one (a journal file); a no-op elsewhere (RDB: ``study.optimize`` does it)."""
    if not _is_journal(storage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            trial.set_user_attr(ALIVE_ATTR, time.time())
            if stop.wait(HEARTBEAT_INTERVAL_S):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _tune_sqlite(engine) -> None:
    """Write-ahead log + ``synchronous=NORMAL``: a commit no longer waits for an fsync (each trial.report is
    a commit: with the default rollback journal a third of a digits run went into fsyncs), readers do not
    block the writer, and a killed process still loses nothing committed (only power loss could)."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # the connection used to create the tables reconnects with the pragmas


def worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
