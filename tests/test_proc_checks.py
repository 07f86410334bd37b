"""The process helpers the kill-the-parent tests rely on tell a live process from a dead one."""
import os
import subprocess
import sys

import pytest
from proc_checks import is_dead, wait_dead


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_live_processes_are_alive_and_zombies_and_reaped_ones_are_dead():
    assert not is_dead(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_dead([child.pid], 30)  # exited, not reaped yet: a zombie counts as dead
    child.wait()
    assert is_dead(child.pid)  # reaped: no /proc entry
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not wait_dead([sleeper.pid], 0.5)
    finally:
        sleeper.kill()
        sleeper.wait()
