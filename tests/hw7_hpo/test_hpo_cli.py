"""The main job's CLI: a small real run and its outputs, resume after SIGKILL, and bad input (one line,
exit code 2, nothing written)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from proc_checks import wait_dead

from hw7_hpo.run import RunConfig, main, parse_args
from hw7_hpo.storage import EPOCH_CAP_ATTR, open_storage, retried_trial_number

REPO = Path(__file__).resolve().parents[2]
TINY = ["--limit-train", "300", "--epochs-per-trial", "2", "--no-progress"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_defaults_are_the_documented_main_job():
    cfg = parse_args([])
    assert cfg == RunConfig(progress=None)
    assert cfg.dataset == "digits" and cfg.methods == ("grid", "random", "optuna", "ga")
    assert cfg.out_dir == Path("runs/hpo-digits-seed0")
    assert cfg.storage_url == f"sqlite:///{Path('runs/hpo-digits-seed0').resolve() / 'optuna.db'}"


def test_small_run_writes_summary_results_and_plots_then_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--out", str(out), "--budget-epochs", "8", *TINY]
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0
    for name in ("summary.md", "results.json", "best_so_far.png", "optuna_history-optuna.png", "run.json",
                 "baseline.json", "optuna.db", "trials/grid.jsonl", "trials/random.jsonl", "trials/ga.jsonl"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"grid", "random", "optuna", "ga"}
    for m in ("random", "optuna", "ga"):
        assert results["methods"][m]["epochs"] == 8
    assert results["methods"]["grid"]["epochs"] == 8  # 4 grid points of 2 epochs
    summary = (out / "summary.md").read_text()
    for m in ("| grid |", "| random |", "| optuna |", "| ga |", "| baseline |"):
        assert m in summary
    assert "| method | best val acc |" in stdout

    code, _, _ = run_cli(args, capsys)  # rerun: everything is resumed, nothing retrained
    assert code == 0
    again = json.loads((out / "results.json").read_text())
    for m in ("grid", "random", "optuna", "ga"):
        assert again["methods"][m]["trials"] == results["methods"][m]["trials"]


def _finished_optuna_trials(url: str, study: str) -> list:
    try:
        trials = optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(deepcopy=False)
    except KeyError:  # study not created yet
        return []
    return [t for t in trials if t.state.is_finished()]


def _count_finished_readonly(db: Path, study: str) -> int:
    """Finished trials of ``study``, read with plain sqlite3 in read-only mode: opening the file through
    Optuna while the job creates its schema would race it (both would run CREATE TABLE)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            row = con.execute("SELECT count(*) FROM trials JOIN studies USING (study_id) "
                              "WHERE studies.study_name = ? AND trials.state != 'RUNNING'", (study,)).fetchone()
        return int(row[0])
    except sqlite3.OperationalError:  # schema not there yet, or locked for a moment
        return 0


@pytest.mark.slow
def test_kill_mid_study_then_rerun_keeps_every_completed_trial(tmp_path):
    out = tmp_path / "killed"
    budget = 60
    cmd = [sys.executable, "-m", "hw7_hpo.run", "--out", str(out), "--methods", "random,optuna",
           "--budget-epochs", str(budget), *TINY]
    url, study = f"sqlite:///{out.resolve() / 'optuna.db'}", "hpo-digits-seed0-optuna"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    before = []
    while time.time() < deadline and proc.poll() is None:
        if _count_finished_readonly(out / "optuna.db", study) >= 3:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished_optuna_trials(url, study)  # what the storage held at the moment of the kill
    random_before = (out / "trials" / "random.jsonl").read_text().splitlines()
    assert len(before) >= 3 and len(random_before) >= 1

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = {t.number: t for t in _finished_optuna_trials(url, study)}
    for t in before:  # every trial finished before the kill is still there, unchanged
        kept = after[t.number]
        assert kept.state == t.state and kept.intermediate_values == t.intermediate_values
    assert (out / "trials" / "random.jsonl").read_text().splitlines()[:len(random_before)] == random_before
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["optuna"]["epochs"] == budget  # the killed trial was not charged
    assert results["methods"]["random"]["epochs"] == budget
    killed = [t for t in after.values()
              if t.state == optuna.trial.TrialState.FAIL and "outcome" not in t.user_attrs]
    assert len(killed) <= 1  # the trial in flight at the kill (if any) is failed by the heartbeat...
    for dead in killed:  # ...and its config is run once more (Optuna's RetryHeartbeatStaleTrialCallback)
        retries = [t for t in after.values() if retried_trial_number(t) == dead.number]
        assert len(retries) == (1 if EPOCH_CAP_ATTR in dead.user_attrs else 0)
        assert all(t.params == dead.params and t.state.is_finished() for t in retries)
    stuck = [t for t in after.values() if t.state == optuna.trial.TrialState.RUNNING]
    assert all(EPOCH_CAP_ATTR not in t.user_attrs for t in stuck)  # only a trial killed before its first
    # heartbeat can stay RUNNING (Optuna never calls it stale); it holds no config and costs no epochs


def _assert_refused(args: list[str], capsys, *needles: str) -> str:
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--dataset", "imagenet"], ["unknown dataset", "--dataset", "digits"]),
    (["--methods", "grid,bayes"], ["bayes", "--methods", "optuna"]),
    (["--methods", ","], ["--methods"]),
    (["--budget-epochs", "0"], ["--budget-epochs", "positive"]),
    (["--budget-epochs", "-10"], ["--budget-epochs", "positive"]),
    (["--budget-epochs", "ten"], ["--budget-epochs", "invalid"]),
    (["--workers", "0"], ["--workers"]),
    (["--storage", "postgresql://hpo@127.0.0.1:1/none"], ["cannot reach --storage"]),
    (["--storage", "sqlite:////nonexistent-folder-hpo/x.db"], ["does not exist", "--storage"]),
    (["--storage", "redis://localhost"], ["unknown scheme", "sqlite:///"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, needles, tmp_path, capsys):
    out = tmp_path / "never"
    _assert_refused(["--out", str(out), *args], capsys, *needles)
    assert not out.exists()


def test_missing_data_root_names_the_fix(tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    monkeypatch.setenv("DLHW_DATA", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    _assert_refused(["--out", str(out), "--dataset", "mnist"], capsys, "MNIST", "DLHW_DATA")
    monkeypatch.delenv("DLHW_DATA")
    _assert_refused(["--out", str(out), "--dataset", "fashion_mnist"], capsys, "DLHW_DATA")
    assert not out.exists()


def test_rerun_with_other_settings_is_refused_and_leaves_the_folder_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--out", str(out), "--methods", "random", "--budget-epochs", "4", *TINY]) == 0
    before = sorted(p.name for p in out.iterdir())
    _assert_refused(["--out", str(out), "--methods", "random", "--budget-epochs", "4", "--seed", "1", *TINY],
                    capsys, "other settings", "--out")
    assert sorted(p.name for p in out.iterdir()) == before


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "--budget-epochs" in capsys.readouterr().out


# ------------------------------------------------------------------- records and outputs that cannot be used
def _finished_random_run(out: Path, capsys) -> list[str]:
    assert main(["--out", str(out), "--methods", "random,optuna", "--budget-epochs", "4", *TINY]) == 0
    capsys.readouterr()
    return sorted(str(p.relative_to(out)) for p in out.rglob("*"))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and not p.name.startswith("optuna.db")}


@pytest.mark.parametrize("budget", ["2", "8"])
def test_other_budget_on_a_finished_folder_is_refused_naming_out(budget, tmp_path, capsys):
    """Shrinking or growing the budget would mix two experiments in one folder (a grid sized for one budget,
    Optuna caps and a GA cut for another): the job refuses and names --out; the folder is left as it was."""
    out = tmp_path / "run"
    _finished_random_run(out, capsys)
    before = _snapshot(out)
    line = _assert_refused(["--out", str(out), "--methods", "random,optuna", "--budget-epochs", budget, *TINY],
                           capsys, "--out", "budget_epochs 4", f"now {budget}")
    assert _snapshot(out) == before, line


@pytest.mark.parametrize("damage, needles", [
    ("run.json", ["run record", "run.json", "not valid JSON"]),
    ("trials/random.jsonl", ["trial log", "random.jsonl", "line 1"]),
    ("optuna.db", ["optuna.db", "SQLite", "delete it"]),
    ("baseline.json", ["baseline record", "baseline.json"]),
])
def test_corrupt_record_in_the_folder_is_one_line_exit_2(damage, needles, tmp_path, capsys):
    out = tmp_path / "run"
    _finished_random_run(out, capsys)
    target = out / damage
    if damage == "optuna.db":
        for extra in out.glob("optuna.db-*"):  # the WAL files would let SQLite repair the page
            extra.unlink()
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])  # truncated
    else:
        target.write_text("garbage {\n" if damage.endswith(".jsonl") else "{not json", encoding="utf-8")
    before = _snapshot(out)
    _assert_refused(["--out", str(out), "--methods", "random,optuna", "--budget-epochs", "4", *TINY], capsys,
                    *needles)
    assert _snapshot(out) == before


def test_unwritable_out_or_storage_is_one_line_exit_2_and_leaves_nothing(tmp_path, capsys):
    """Tests run as root, for whom permission bits block nothing: a path *under a regular file* is the
    unwritable location every user gets."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _assert_refused(["--out", str(blocker / "run"), *TINY], capsys, "--out", "is a file")
    out = tmp_path / "run"
    for storage in (f"sqlite:///{blocker}/x.db", f"journal:///{blocker}/x.log"):
        _assert_refused(["--out", str(out), "--storage", storage, *TINY], capsys, "--storage")
        assert not out.exists()  # neither run.json nor baseline.json
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_unusable_device_is_one_line_exit_2(tmp_path, capsys):
    _assert_refused(["--out", str(tmp_path / "never"), "--device", "tpu", *TINY], capsys, "tpu", "cpu")
    assert not (tmp_path / "never").exists()


def test_password_in_a_query_parameter_is_masked_in_the_error(tmp_path, capsys):
    line = _assert_refused(["--out", str(tmp_path / "never"), "--storage",
                            "postgresql://hpo@127.0.0.1:1/none?password=Hunter2Query", *TINY], capsys, "--storage")
    assert "Hunter2Query" not in line and "password=***" in line
    line = _assert_refused(["--out", str(tmp_path / "never"), "--storage",
                            "redis://hpo:Hunter2Info@localhost/0", *TINY], capsys, "unknown scheme")
    assert "Hunter2Info" not in line and "hpo:***@" in line


# ----------------------------------------------------------------------------------- Ctrl-C and killed workers
def _start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, like a job in a terminal


def _wait_for_trials(proc: subprocess.Popen, db: Path, study: str, count: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if _count_finished_readonly(db, study) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {count} finished trials before the deadline: {proc.communicate()[1][-2000:]}")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _workers_cmd(out: Path, workers: int, budget: int = 40) -> list[str]:
    return [sys.executable, "-m", "hw7_hpo.run", "--out", str(out), "--methods", "optuna", "--budget-epochs",
            str(budget), "--workers", str(workers), *TINY]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_during_optuna_trials_is_one_line_exit_130_and_resumable(workers, tmp_path):
    out = tmp_path / "run"
    cmd = _workers_cmd(out, workers)
    proc = _start(cmd)
    _wait_for_trials(proc, out / "optuna.db", "hpo-digits-seed0-optuna", 2)
    workers_pids = [c for c in _children(proc.pid)]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "interrupted" in stderr and "resume" in stderr, stderr
    assert wait_dead(workers_pids), "a worker outlived the interrupted job"
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["methods"]["optuna"]["epochs"] == 40


@pytest.mark.slow
def test_workers_die_with_a_killed_parent_and_the_rerun_writes_the_summary(tmp_path):
    out = tmp_path / "run"
    cmd = _workers_cmd(out, 2)
    proc = _start(cmd)
    _wait_for_trials(proc, out / "optuna.db", "hpo-digits-seed0-optuna", 2)
    family = _children(proc.pid)  # two workers and multiprocessing's resource tracker
    assert len(family) >= 2, family
    proc.kill()  # SIGKILL: no handler runs in the parent
    proc.communicate(timeout=180)  # the pipes close when the workers (holding them too) are gone; slow under load
    assert wait_dead(family), "workers (or the resource tracker) outlived their killed parent"
    done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "results.json").read_text())["methods"]["optuna"]["epochs"] == 40
    assert (out / "summary.md").is_file()


@pytest.mark.slow
def test_a_killed_worker_is_one_line_and_the_survivor_finishes_the_budget(tmp_path):
    out = tmp_path / "run"
    proc = _start(_workers_cmd(out, 2))
    _wait_for_trials(proc, out / "optuna.db", "hpo-digits-seed0-optuna", 3)
    workers = [pid for pid in _children(proc.pid)
               if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "killed by signal 9" in lines[0], stderr
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["optuna"]["epochs"] == 40  # the survivor spent the whole budget, not more
    assert len(results["methods"]["optuna"]["extra"]["lost_workers"]) == 1
    assert "| optuna |" in (out / "summary.md").read_text()
