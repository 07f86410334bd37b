"""Where Optuna studies live: storage URLs, a reachability check, and clean-up of trials of dead workers.

Accepted ``--storage`` values:

- ``sqlite:///path/optuna.db`` (the default, in the output folder): an RDB file; fine for a few local
  worker processes (each connection waits up to 60 s for SQLite's write lock instead of failing);
- ``journal:///path/optuna.log``: Optuna's ``JournalStorage`` on a file, the storage Optuna recommends for
  many processes writing one file (append-only log with a file lock);
- ``postgresql://user:pass@host:port/db`` (or ``mysql://...``): an RDB server that several *machines* can
  share. Workers send a heartbeat every 10 s; a trial whose worker vanished for 60 s is failed and its
  config queued again.

A worker killed on this machine leaves its trial ``RUNNING`` for ever; :func:`reap_dead_trials` fails the
trials whose worker (``host:pid``, the first thing a trial records) is no longer alive, and trials that
never recorded a worker within ``ORPHAN_AFTER_S``, and queues their configs again, so a rerun after
``kill -9`` neither loses nor double-counts work.
"""
from __future__ import annotations

import datetime
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import optuna
from optuna.trial import TrialState

HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60
SQLITE_LOCK_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 5
ORPHAN_AFTER_S = 20  # a RUNNING trial that never wrote its worker id for this long was killed at birth
SERVER_SCHEMES = ("postgresql", "postgres", "mysql")


class StorageError(ValueError):
    """The storage URL is malformed or its server/folder cannot be reached."""


def default_storage(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'optuna.db'}"


def scheme(url: str) -> str:
    """``sqlite``, ``journal``, ``postgresql``... (driver suffixes like ``+psycopg2`` dropped)."""
    return urlparse(url).scheme.split("+")[0].lower()


def storage_file(url: str) -> Path:
    """The file of a ``sqlite:///...`` or ``journal:///...`` URL."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path:
        raise StorageError(f"storage URL {url!r} names no file; write it as {scheme(url)}:///path/to/file "
                           f"(three slashes, then the path).")
    return Path(path).expanduser()  # sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy)


def check_storage(url: str, pending_dirs: tuple[Path, ...] = ()) -> None:
    """Raise :class:`StorageError` (one line, naming the fix) unless ``url`` can be opened.

    File storages need an existing parent folder (or one in ``pending_dirs``, created by the caller after
    validation); server storages must accept a connection within a few seconds.
    """
    kind = scheme(url)
    if kind in ("sqlite", "journal"):
        parent = storage_file(url).resolve().parent
        if not parent.is_dir() and not any(parent == Path(p).resolve() for p in pending_dirs):
            raise StorageError(f"the folder {parent} of storage {url!r} does not exist; create it or give "
                               f"--storage a path in an existing folder.")
        return
    if kind not in SERVER_SCHEMES:
        raise StorageError(f"storage URL {url!r} has an unknown scheme {kind!r}; use sqlite:///file.db, "
                           f"journal:///file.log or postgresql://user:password@host:port/database.")
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(normalize_url(url),
                                          connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # driver errors vary (psycopg2.OperationalError, ImportError, ArgumentError)
        reason = " ".join(str(err).split())[:300]
        raise StorageError(f"cannot reach storage {redact(url)} ({type(err).__name__}: {reason}); start the "
                           f"database server or fix --storage.") from err


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


def redact(url: str) -> str:
    """``url`` with the password hidden (for messages and reports)."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@", 1)
    return url


# Written by the objective once a trial has drawn its whole config (every ``suggest_*`` call is its own
# storage write, so a worker killed while sampling leaves a trial with only part of a config).
EPOCH_CAP_ATTR = "epoch_cap"


def retry_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Queue a lost trial's config again (it was never charged to the budget). A trial killed before it had
    drawn its whole config is not retried: there is no config to repeat, and it cost nothing."""
    if trial.params and EPOCH_CAP_ATTR in trial.user_attrs:
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage object for ``url`` (see the module docstring)."""
    kind = scheme(url)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(storage_file(url))))
    if kind == "sqlite":
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT_S}})
        _tune_sqlite(storage.engine)
        return storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable since 2.9
        return optuna.storages.RDBStorage(normalize_url(url), heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                          grace_period=GRACE_PERIOD_S,
                                          heartbeat_stale_trial_callback=retry_trial)


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
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet waited for is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_dead(trial: optuna.trial.FrozenTrial, host: str, now: datetime.datetime) -> bool:
    owner = trial.user_attrs.get("worker")
    if owner is None:  # killed between the trial's creation and its first write (sampling); give it time
        started = trial.datetime_start
        return started is not None and (now - started).total_seconds() > ORPHAN_AFTER_S
    owner_host, _, pid = str(owner).rpartition(":")
    return owner_host == host and pid.isdigit() and not _pid_alive(int(pid))


def reap_dead_trials(study: optuna.Study) -> list[int]:
    """Fail ``RUNNING`` trials whose worker process on this host is gone; queue their configs again."""
    host, now = socket.gethostname(), datetime.datetime.now()
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _is_dead(trial, host, now):
            continue
        try:  # the storage-level call Optuna's own fail_stale_trials uses (no public Study method)
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                retry_trial(study, trial)
                reaped.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker reaped it first
    return reaped
