"""common.cli: the one command-line contract (one line + exit 2, exit 130, nothing written)."""
import os
import signal
import subprocess
import sys

import pytest

from common import (ConfigError, DataNotFoundError, Parser, UsageError, add_standard_args, check_positive,
                    check_writable, progress_enabled, run_cli, standard_settings)


def _job(argv):
    parser = Parser(prog="python -m demo")
    add_standard_args(parser)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    settings = standard_settings(args)
    check_positive("--epochs", args.epochs)
    return 0 if settings.profile.name in ("quick", "full") else 1


@pytest.mark.parametrize("argv, words", [
    (["--no-such-flag"], "unrecognized arguments"),
    (["--epochs", "x"], "invalid int value"),
    (["--epochs", "-1"], "--epochs must be at least 1"),
    (["--profile", "bogus"], "not a profile"),
    (["--device", "tpu"], "use 'cpu' or 'cuda'"),
    (["--device", "nonsense"], "not a device"),
    (["--threads", "0"], "--threads"),
])
def test_bad_input_is_one_line_and_exit_2(argv, words, capsys, monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)
    assert run_cli(_job, argv, prog="python -m demo") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m demo: error: ") and words in err, err


def test_data_root_and_profile_resolved_once(tmp_path, monkeypatch):
    parser = Parser(prog="p")
    add_standard_args(parser)
    monkeypatch.setenv("DLHW_PROFILE", "full")
    monkeypatch.setenv("DLHW_DATA", str(tmp_path))
    s = standard_settings(parser.parse_args([]))
    assert s.profile.name == "full" and s.data_root == tmp_path.resolve() and s.device.type in ("cpu", "cuda")
    s = standard_settings(parser.parse_args(["--profile", "quick", "--device", "cpu"]))
    assert s.profile.name == "quick" and s.device.type == "cpu"
    with pytest.raises(UsageError, match="--data-root .* is not a folder"):
        standard_settings(parser.parse_args(["--data-root", str(tmp_path / "nope")]))
    monkeypatch.setenv("DLHW_PROFILE", "bogus")
    with pytest.raises(ConfigError, match="DLHW_PROFILE"):
        standard_settings(parser.parse_args([]))


def test_user_errors_of_any_kind_are_one_line(capsys):
    def missing(argv):
        raise DataNotFoundError("MNIST is not in /x\nset DLHW_DATA")

    assert run_cli(missing, [], prog="job") == 2
    assert capsys.readouterr().err == "job: error: MNIST is not in /x set DLHW_DATA\n"


def test_ctrl_c_is_one_line_and_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_cli(interrupted, [], prog="job") == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rerun the same command to resume" in err


def test_bugs_keep_their_traceback():
    def bug(argv):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_cli(bug, [], prog="job")


def test_check_writable_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # the probe left nothing behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_writable(blocker / "out")
    if os.geteuid() != 0:  # root ignores permission bits; the file case above covers root
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(UsageError, match="not writable"):
            check_writable(ro / "out")


def test_progress_default_is_off_outside_a_terminal(monkeypatch):
    assert progress_enabled(True) is True and progress_enabled(False) is False
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(None) is False


def test_sigterm_is_an_interrupt_with_exit_130(tmp_path):
    code = ("import os, signal, sys\n"
            "from common import run_cli\n"
            "def job(argv):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    import time; time.sleep(5)\n"
            "sys.exit(run_cli(job, [], prog='job'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr.count("\n") == 1, proc.stderr


def test_worker_dies_with_its_parent(tmp_path):
    """die_with_parent: a grandchild that asked for it is killed when its parent is SIGKILLed."""
    from proc_checks import parent_of, python, wait_dead, wait_for_file

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pidfile = tmp_path / "worker.pid"
    worker = ("import os, time, sys\n"
              "from common.cli import die_with_parent\n"
              "die_with_parent()\n"
              f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
              "time.sleep(60)\n")
    proc = python(parent_of(worker))
    try:
        assert wait_for_file(pidfile, 60), "the worker never started"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    worker_pid = int(pidfile.read_text())
    if not wait_dead([worker_pid], 10):
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


def test_an_interrupted_job_ends_although_a_library_left_a_thread_running():
    """exit_process: after Ctrl-C a non-daemon thread that never stops (Optuna's heartbeat thread when the
    interrupt lands inside its start) must not keep the process alive; one line, exit 130."""
    code = ("import threading, time, sys\n"
            "from common.cli import exit_process, run_cli\n"
            "def job(argv):\n"
            "    threading.Thread(target=lambda: time.sleep(3600)).start()\n"
            "    raise KeyboardInterrupt\n"
            "exit_process(run_cli(job, [], prog='job'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.parametrize("code, expected", [(0, 0), (2, 2)])
def test_exit_process_waits_for_threads_unless_interrupted(code, expected):
    """A job that ends normally still lets its non-daemon threads finish (no work is cut short)."""
    script = ("import threading, time\n"
              "from common.cli import exit_process\n"
              "def late():\n"
              "    time.sleep(0.5); print('finished', flush=True)\n"
              "threading.Thread(target=late).start()\n"
              f"exit_process({code})\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == expected and "finished" in proc.stdout


def test_a_library_error_logged_while_ctrl_c_unwinds_stays_off_stderr():
    """Ctrl-C inside a database read: SQLAlchemy logs "Error closing cursor" with tracebacks on its way out.
    The job still prints its one line; an error logged for another reason is still shown."""
    code = ("import logging, sys\n"
            "from common.cli import run_cli\n"
            "def job(argv):\n"
            "    logging.getLogger('library').error('unrelated failure')\n"
            "    try:\n"
            "        raise KeyboardInterrupt\n"
            "    except KeyboardInterrupt:\n"
            "        try:\n"
            "            raise RuntimeError('Cannot operate on a closed database.')\n"
            "        except RuntimeError:\n"
            "            logging.getLogger('sqlalchemy.pool').error('Error closing cursor', exc_info=True)\n"
            "        raise\n"
            "sys.exit(run_cli(job, [], prog='job'))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines() == ["unrelated failure",
                                        "job: interrupted; what was computed is kept, rerun the same command to "
                                        "resume."], proc.stderr


def test_caused_by_interrupt_follows_the_exception_chain():
    from common.cli import caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("cleanup failed")
    except ValueError as err:
        assert caused_by_interrupt(err)
    assert not caused_by_interrupt(ValueError("plain")) and not caused_by_interrupt(None)


def test_parse_widths_takes_a_comma_list_of_positive_integers():
    from common.cli import parse_widths
    assert parse_widths("--hidden", "1000,500") == (1000, 500)
    for bad, match in (("1000,x", "comma-separated"), ("", "comma-separated"), ("8,0", "positive")):
        with pytest.raises(UsageError, match=match):
            parse_widths("--hidden", bad)


def test_command_line_quotes_what_the_shell_would_split():
    from common import command_line
    line = command_line("python -m pkg.run", ["--out", "my results/a.json", "--lr", "1e-3"])
    assert line == "python -m pkg.run --out 'my results/a.json' --lr 1e-3"
    assert command_line("prog", []) == "prog"


def test_check_out_file_refuses_a_folder_and_names_a_file(tmp_path):
    from common import check_out_file
    assert check_out_file(tmp_path / "new" / "a.json", "a.json") == tmp_path / "new" / "a.json"
    assert not (tmp_path / "new").exists()  # nothing created
    with pytest.raises(UsageError, match=r"is a folder; give a file name such as .*b\.json"):
        check_out_file(tmp_path, "b.json")
