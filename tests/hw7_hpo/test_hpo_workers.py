"""Two worker processes on one Optuna storage: SQLite, a journal file, and a real PostgreSQL server.

The PostgreSQL test starts a throwaway cluster (``initdb`` + ``pg_ctl``) in a temporary folder on a free
loopback port, as the ``postgres`` user when the tests run as root (``initdb`` refuses root), and removes it
afterwards. It is skipped, with the reason, when the server binaries are not installed
(Debian: ``apt-get install -y postgresql``; binaries in ``/usr/lib/postgresql/<version>/bin``).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from conftest import TINY_DATA

from hw7_hpo.objective import Objective
from hw7_hpo.optuna_search import optuna_search
from hw7_hpo.storage import open_storage

BUDGET, EPOCHS = 30, 3


def two_workers(url: str, study_name: str):
    objective = Objective(TINY_DATA.load(), max_epochs=EPOCHS, seed=0, device="cpu")
    return optuna_search(objective, BUDGET, storage=url, study_name=study_name, workers=2, data=TINY_DATA,
                         progress=False)


def check_shared_study(result, url: str, study_name: str) -> None:
    assert result.epochs == BUDGET, "the workers together must spend exactly the budget"
    trials = optuna.load_study(study_name=study_name, storage=open_storage(url)).trials
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(workers) == 2, f"expected trials from two worker processes, got {workers}"
    assert len({t.number for t in trials}) == len(trials)
    assert result.best_val_acc is not None and result.test_acc is not None


@pytest.mark.slow
def test_two_workers_share_a_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    check_shared_study(two_workers(url, "sqlite-2w"), url, "sqlite-2w")


@pytest.mark.slow
def test_two_workers_share_a_journal_file(tmp_path):
    url = f"journal:///{tmp_path / 'shared.log'}"
    check_shared_study(two_workers(url, "journal-2w"), url, "journal-2w")


# --------------------------------------------------------------------------------------------- PostgreSQL
def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server on 127.0.0.1 for this module, torn down afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("needs PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql")
    pytest.importorskip("psycopg2", reason="needs psycopg2 (psycopg2-binary) for PostgreSQL storage")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*cmd: str) -> None:
        subprocess.run(prefix + list(cmd), check=True, capture_output=True, text=True, timeout=120)

    try:
        run(initdb, "-D", str(data), "-U", "hpo", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} -c fsync=off",
            "start")
    except subprocess.CalledProcessError as err:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"could not start a throwaway PostgreSQL: {err.stderr or err.stdout}")
    try:
        yield f"postgresql://hpo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], check=False,
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_a_postgresql_study(postgres_url):
    check_shared_study(two_workers(postgres_url, "pg-2w"), postgres_url, "pg-2w")
    # a second "machine" (here: a second call) joining the same study with a larger budget continues it
    objective = Objective(TINY_DATA.load(), max_epochs=EPOCHS, seed=0, device="cpu")
    more = optuna_search(objective, BUDGET + 6, storage=postgres_url, study_name="pg-2w", data=TINY_DATA,
                         progress=False)
    assert more.epochs == BUDGET + 6


@pytest.mark.slow
@pytest.mark.postgres
def test_storage_password_appears_in_no_output_file_or_message(postgres_url, tmp_path, capsys):
    """The server trusts local connections, so it accepts any password: both spellings of a password reach
    the driver, and neither may reach stdout, stderr or any file the job writes."""
    from hw7_hpo.run import main

    head, tail = postgres_url.split("://", 1)
    secrets = {"Info-S3cret-pw": f"{head}://hpo:Info-S3cret-pw@{tail.split('@', 1)[1]}",
               "Query-S3cret-pw": f"{postgres_url}?password=Query-S3cret-pw"}
    for index, (secret, url) in enumerate(secrets.items()):
        out = tmp_path / f"run{index}"  # (the folder's own path is written to run.json)
        args = ["--out", str(out), "--methods", "optuna", "--budget-epochs", "4", "--limit-train", "300",
                "--epochs-per-trial", "2", "--no-progress", "--storage", url, "--study-name", f"pw-{index}"]
        assert main(args) == 0
        # a refusal quotes the storage too: same study, other seed
        assert main([*args[:2], "--seed", "1", *args[2:]]) == 2
        captured = capsys.readouterr()
        files = [p for p in out.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {"results.json", "summary.md", "run.json"}
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{path} holds the password"
        assert secret not in captured.out + captured.err
        assert "***" in (out / "results.json").read_text()


def test_a_worker_with_a_leftover_thread_still_dies_with_its_killed_parent(tmp_path):
    """A worker's Optuna heartbeat thread is not a daemon, and a signal landing inside its ``Thread.start``
    leaves it running forever. The worker must still end when its parent is SIGKILLed (CI once saw a worker
    outlive its parent by minutes): SIGTERM from ``PR_SET_PDEATHSIG`` ends it at once."""
    import signal
    import sys

    from proc_checks import parent_of, python, wait_dead, wait_for_file

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pidfile = tmp_path / "worker.pid"
    worker = ("import os, threading, time\n"
              "from hw7_hpo.optuna_search import worker_signals\n"
              "worker_signals()\n"
              "threading.Thread(target=time.sleep, args=(3600,)).start()  # the leaked heartbeat thread\n"
              f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
              "time.sleep(3600)\n")
    proc = python(parent_of(worker))
    try:
        assert wait_for_file(pidfile), "the worker never started"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    worker_pid = int(pidfile.read_text())
    if not wait_dead([worker_pid], 30):
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")


def test_ctrl_c_ends_a_worker_at_once_and_silently(tmp_path):
    """Ctrl-C reaches every worker (the terminal signals the whole process group). Raised as KeyboardInterrupt
    it could land in a weakref callback (swallowed, with a traceback on stderr: the job's one line became
    seven) or inside Thread.start (a heartbeat thread left running). A worker ends at once, 130, silent."""
    import signal

    from proc_checks import python, wait_for_file

    ready = tmp_path / "ready"
    worker = ("import threading, time\n"
              "from hw7_hpo.optuna_search import worker_signals\n"
              "worker_signals()\n"
              "threading.Thread(target=time.sleep, args=(3600,)).start()  # the leaked heartbeat thread\n"
              f"open({str(ready)!r}, 'w').close()\n"
              "time.sleep(3600)\n")
    proc = python(worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_file(ready), "the worker never started"
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not end the worker")
    assert proc.returncode == 130 and err == "" and out == "", (proc.returncode, err)
