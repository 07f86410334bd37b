"""Helpers for the tests that kill a parent process and check that its workers die with it (Linux /proc).

Importable as ``proc_checks`` from every test module: pytest puts ``tests/`` on ``sys.path`` for the root
``conftest.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def is_dead(pid: int) -> bool:
    """True when ``pid`` is gone, or a zombie (it has exited and only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # the name in brackets may hold spaces and ')'


def wait_dead(pids: list[int], timeout: float = 20) -> bool:
    """Wait up to ``timeout`` seconds for every pid to be dead (:func:`is_dead`); whether they all are."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(is_dead(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return all(is_dead(pid) for pid in pids)


def wait_for_file(path: Path, timeout: float = 120) -> bool:
    """Wait up to ``timeout`` seconds for ``path`` to exist; whether it does."""
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.1)
    return path.exists()


def python(code: str, **popen) -> subprocess.Popen:
    """``python -c code`` in the repository root with the repository importable."""
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, **popen)


def parent_of(worker_code: str) -> str:
    """Python code for a parent that starts ``python -c worker_code`` and then sleeps: kill it to test
    whether the worker dies with its parent."""
    return ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', {worker_code!r}])\n"
            "time.sleep(3600)\n")
