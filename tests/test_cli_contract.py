"""The command-line contract, walked over every entry point (issue 15, item 7).

For each entry point x (bad flag, bad value, bogus profile, bad device, missing data or weights, unwritable
output): exit code 2, at most two lines on stderr naming the problem, no traceback, and nothing written
(the working folder, where every output would go, is exactly as before). The real data folder is set in the
environment (when present) so that each case fails for its own reason, not for missing data.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMPTY = "{empty}"  # replaced by an existing, empty data folder
BLOCKED = "{blocked}"  # replaced by a path below a regular file: it can never be created (also for root)
DATA = "{data}"  # replaced by the real data folder (cases using it skip without it)

# entry point -> {case: (argv, words one of which the error line must contain)}
ENTRY_POINTS: dict[str, dict[str, tuple[list[str], tuple[str, ...]]]] = {
    "hw7_hpo.run": {
        "bad value": (["--budget-epochs", "0"], ("--budget-epochs",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--dataset", "mnist", "--data-root", EMPTY], ("MNIST", "data")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw2_mlp.train_cifar": {
        "bad value": (["--epochs", "-1"], ("--epochs",)),
        "unknown update rule": (["--update-rule", "bogus"], ("--update-rule", "bogus")),
        "zero batch": (["--batch-size", "0"], ("--batch-size",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--data-root", EMPTY], ("CIFAR", "cifar")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw2_mlp.ff_run": {
        "bad value": (["--sup-epochs", "-1"], ("--sup-epochs",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--data-root", EMPTY], ("MNIST",)),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw2_mlp.ff_baseline": {
        "bad value": (["--decays", "0,-1"], ("--decays",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--data-root", EMPTY], ("MNIST",)),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw2_cnn.train_cifar": {
        "bad value": (["--epochs", "-1"], ("--epochs",)),
        "unknown dataset": (["--dataset", "imagenet"], ("--dataset",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--dataset", "cifar10", "--data-root", EMPTY], ("CIFAR", "cifar")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw5_clip_peft.clip.clip_experiments": {
        "bad value": (["--batch-size", "0"], ("--batch-size",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--data-root", EMPTY], ("Stanford Dogs", "dogs", "Dogs")),
        "missing weights": (["--profile", "full", "--dogs-dir", f"{DATA}/stanford_dogs_sample",
                             "--base-checkpoint", BLOCKED], ("checkpoint", "weights")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw5_clip_peft.llm.run": {
        "bad value": (["--epochs", "0"], ("--epochs",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing weights": (["--profile", "full", "--sentiment-model", BLOCKED], ("--sentiment-model", "model")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "hw5_clip_peft.vit_lora.run": {
        "bad value": (["--rank", "0"], ("--rank",)),
        "bogus profile": (["--profile", "bogus"], ("profile",)),
        "bad device": (["--device", "tpu"], ("device",)),
        "missing data": (["--data-root", EMPTY], ("Food", "food")),
        "missing weights": (["--profile", "full", "--data", "sample", "--model", BLOCKED], ("--model", "model")),
        "unwritable output": (["--out", BLOCKED], ("--out",)),
    },
    "common.notebooks": {
        "bad value": (["--timeout", "0", "missing.ipynb"], ("--timeout",)),
        "unwritable output": (["--out", BLOCKED, "missing.ipynb"], ("--out",)),
    },
}
for _cases in ENTRY_POINTS.values():
    _cases["bad flag"] = (["--no-such-flag"], ("unrecognized arguments",))

CASES = [(module, case) for module, cases in ENTRY_POINTS.items() for case in cases]


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("module, case", CASES, ids=[f"{m}:{c}" for m, c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(module, case, tmp_path, monkeypatch, capsys):
    argv, words = ENTRY_POINTS[module][case]
    (tmp_path / "empty_data").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    argv = [a.replace(EMPTY, str(tmp_path / "empty_data")).replace(BLOCKED, str(tmp_path / "a_file" / "x"))
            for a in argv]
    shared = REPO.parent / "shared" / "data"
    if not os.environ.get("DLHW_DATA") and shared.is_dir():
        monkeypatch.setenv("DLHW_DATA", str(shared))
    data = os.environ.get("DLHW_DATA")
    if any(DATA in a for a in argv) or case == "missing weights":
        if not data or not Path(data).is_dir():
            pytest.skip("needs real data: set DLHW_DATA to the shared data folder (e.g. ../shared/data)")
        argv = [a.replace(DATA, data) for a in argv]
    monkeypatch.setenv("DLHW_PROFILE", "quick")
    monkeypatch.setenv("DLHW_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    main = importlib.import_module(module).main
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, f"{module} {argv}: exit {code}, stderr: {err[-800:]}"
    assert 1 <= len(lines) <= 2 and "Traceback" not in err, err
    if not data or not Path(data).is_dir():  # without any data, "the data is missing" may come first
        words = words + ("DLHW_DATA", "--data-root")
    assert any(w in err for w in words), f"the error does not name the problem ({words}): {err}"
    assert _snapshot(tmp_path) - before <= {"cache"}, f"{module} wrote {_snapshot(tmp_path) - before}"


@pytest.mark.parametrize("module", [m for m, c in ENTRY_POINTS.items() if "bogus profile" in c])
def test_a_bogus_profile_in_the_environment_is_refused_too(module, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DLHW_PROFILE", "bogus")
    monkeypatch.chdir(tmp_path)
    code = importlib.import_module(module).main([])
    err = capsys.readouterr().err
    assert code == 2 and "DLHW_PROFILE" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmarks_follow_the_contract_too(script):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--no-such-flag"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-800:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
