"""hw2_mlp.train_cifar: the command-line contract (one line, exit 2, nothing written; Ctrl-C exit 130) and,
with real CIFAR-10, a tiny end-to-end run that a rerun resumes without new work."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw2_mlp import train_cifar
from hw2_mlp.train_cifar import main

ROOT = Path(__file__).resolve().parents[2]


def _cifar_dir(tmp_path):
    """A data root whose cifar-10-batches-py holds empty placeholder batch files: enough for the flag checks,
    which all fail before anything is read."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in train_cifar.CIFAR_FILES:
        (folder / name).write_bytes(b"")
    return tmp_path / "data"


BAD_ARGV = [
    (["--epochs", "-1"], "--epochs"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--update-rule", "adagrad"], "--update-rule"),
    (["--stages", "search,bogus"], "--stages"),
    (["--stages", ","], "--stages"),
    (["--candidates", "1", "--finalists", "3"], "--finalists"),
    (["--profile", "bogus"], "bogus"),
    (["--threads", "0"], "--threads"),
    (["--device", "tpu"], "tpu"),
    (["--epochs", "two"], "--epochs"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--only-finalist", "0"], "--only-finalist"),
    (["--only-finalist", "5"], "--only-finalist"),
]


@pytest.mark.parametrize("argv, word", BAD_ARGV)
def test_bad_flags_are_one_line_exit_2_and_write_nothing(tmp_path, capsys, argv, word):
    out, ckpt = tmp_path / "out" / "r.json", tmp_path / "ck"
    code = main(["--data-root", str(_cifar_dir(tmp_path)), "--out", str(out), "--checkpoint-dir", str(ckpt),
                 *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and word in err and "Traceback" not in err
    assert not out.exists() and not ckpt.exists()


def test_bogus_profile_variable_is_rejected(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DLHW_PROFILE", "bogus")
    code = main(["--data-root", str(_cifar_dir(tmp_path)), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "DLHW_PROFILE" in err and err.count("\n") == 1


@pytest.mark.parametrize("layout", ["no folder", "one batch missing"])
def test_missing_cifar10_is_exit_2(tmp_path, capsys, layout):
    root = tmp_path / "data"
    root.mkdir()
    if layout == "one batch missing":
        root = _cifar_dir(tmp_path / "x")
        (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    code = main(["--data-root", str(root), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "CIFAR-10" in err and "--data-root" in err and err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()


def test_unset_data_root_is_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)
    assert main(["--out", str(tmp_path / "r.json")]) == 2
    assert "DLHW_DATA" in capsys.readouterr().err


def test_unwritable_out_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["--data-root", str(_cifar_dir(tmp_path)), "--out", str(blocker / "r.json")])
    assert code == 2 and "--out" in capsys.readouterr().err


def test_ctrl_c_is_one_line_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cifar.fx, "load_cifar", interrupted)
    code = main(["--data-root", str(_cifar_dir(tmp_path)), "--out", str(tmp_path / "r.json"),
                 "--checkpoint-dir", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "rerun" in err


def test_as_a_module_no_traceback(tmp_path):
    """The real entry point: ``python -m hw2_mlp.train_cifar`` with a bad value prints one line, exit 2."""
    env = {**os.environ, "DLHW_DATA": str(_cifar_dir(tmp_path))}
    proc = subprocess.run([sys.executable, "-m", "hw2_mlp.train_cifar", "--batch-size", "0", "--out",
                           str(tmp_path / "r.json")], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_tiny_run_end_to_end_and_resume(data_root, tmp_path, capsys):
    """Real CIFAR-10 (a 300-image subset), two stages; the same command again resumes every checkpoint and
    reproduces the record, and the test accuracy belongs to the finalist with the best validation accuracy."""
    if not (data_root / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip(f"needs CIFAR-10 under {data_root}/cifar-10-batches-py")
    out, ckpt = tmp_path / "r.json", tmp_path / "ck"
    argv = ["--profile", "quick", "--data-root", str(data_root), "--threads", "1", "--out", str(out),
            "--checkpoint-dir", str(ckpt), "--stages", "two_layer,search", "--limit-train", "300",
            "--two-layer-epochs", "1", "--search-epochs", "1", "--epochs", "1", "--search-train", "200"]
    assert main(argv) == 0
    first = json.loads(out.read_text())
    checkpoints = sorted(p.name for p in ckpt.glob("*.pt"))
    assert main(argv) == 0
    again = json.loads(out.read_text())
    assert sorted(p.name for p in ckpt.glob("*.pt")) == checkpoints
    assert again["results"] == first["results"]
    search = first["results"]["search"]
    best = max(search["finals"], key=lambda r: r["best_val_acc"])
    assert search["best"]["id"] == best["id"] and search["best"]["val_acc"] == best["best_val_acc"]
    assert 0.0 <= search["best"]["test_acc"] <= 1.0
    assert first["data"].startswith("CIFAR-10: train 300, val 500, test 500")
    assert (tmp_path / "r_w1.png").exists()
    assert len(first["results"]["two_layer"]["val_acc"]) == 1
