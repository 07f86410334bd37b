"""The Forward-Forward command line (python -m hw2_mlp.ff_run): the CLI contract, partial results, resume."""
import json

import pytest
import torch

import hw2_mlp.ff_run as ff_run
from hw2_mlp.ff_run import main

TINY = ["--hidden", "32,32", "--limit-train", "300", "--limit-test", "200", "--sup-epochs", "2",
        "--unsup-epochs", "2", "--baseline-epochs", "1", "--probe-epochs", "1", "--threads", "1",
        "--no-progress"]


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("python -m hw2_mlp.ff_run: error:"), err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["--sup-epochs", "-1"], "--sup-epochs"),
    (["--unsup-epochs", "0"], "--unsup-epochs"),
    (["--lr", "-0.1"], "--lr"),
    (["--hidden", "10,x"], "--hidden"),
    (["--negatives", "easy"], "--negatives"),
    (["--only", "sideways"], "--only"),
    (["--frobnicate"], "--frobnicate"),
    (["--profile", "huge"], "profile"),
    (["--device", "tpu9"], "tpu9"),
    (["--threads", "0"], "--threads"),
    (["--data-root", "/nonexistent/data"], "--data-root"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, fragment, tmp_path, capsys):
    out = tmp_path / "res" / "ff.json"
    code = main(argv + ["--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")])
    assert code == 2
    one_line_error(capsys, fragment)
    assert not out.exists() and not (tmp_path / "ck").exists()


def test_missing_data_names_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DLHW_DATA", raising=False)
    out = tmp_path / "ff.json"
    assert main(TINY + ["--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    one_line_error(capsys, "DLHW_DATA")
    assert not out.exists()


def test_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(TINY + ["--out", str(blocker / "ff.json"), "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    one_line_error(capsys, "--out")
    assert main(TINY + ["--out", str(tmp_path), "--checkpoint-dir", str(tmp_path / "ck")]) == 2
    one_line_error(capsys, "--out", "folder")


# ------------------------------------------------------------------------------- real MNIST, tiny runs
@pytest.fixture
def data(mnist_root, monkeypatch):
    monkeypatch.setenv("DLHW_DATA", str(mnist_root))
    return mnist_root


def test_ctrl_c_leaves_a_partial_json_and_the_same_command_resumes(data, tmp_path, capsys, monkeypatch):
    out, ck = tmp_path / "ff.json", tmp_path / "ck"
    argv = TINY + ["--only", "supervised", "--out", str(out), "--checkpoint-dir", str(ck)]
    real_write = ff_run.write_json_atomic
    calls = []

    def write_then_interrupt(path, obj):
        real_write(path, obj)
        calls.append(obj["supervised"]["epochs_done"])
        raise KeyboardInterrupt  # Ctrl-C right after epoch 1's partial results were written

    monkeypatch.setattr(ff_run, "write_json_atomic", write_then_interrupt)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    partial = json.loads(out.read_text())
    assert partial["partial"] and partial["supervised"]["partial"] and partial["supervised"]["epochs_done"] == 1
    assert partial["supervised"]["latest_test_error"]["epoch"] == 1
    assert len(list(ck.glob("ff_supervised_*.pt"))) == 1
    monkeypatch.setattr(ff_run, "write_json_atomic", real_write)
    assert main(argv) == 0
    final = json.loads(out.read_text())
    assert not final["partial"] and [r["epoch"] for r in final["supervised"]["history"]] == [1, 2]
    assert final["command"].startswith("python -m hw2_mlp.ff_run ")
    assert final["hardware"]["torch_threads"] == 1 and final["supervised"]["examples_per_s"] > 0


def test_a_rerun_with_another_lr_trains_afresh(data, tmp_path):
    """Same checkpoint folder, changed --lr: the second run reports what a fresh run reports."""
    ck = tmp_path / "ck"
    base = TINY + ["--only", "supervised", "--checkpoint-dir", str(ck)]
    assert main(base + ["--lr", "3e-3", "--out", str(tmp_path / "a.json")]) == 0
    assert main(base + ["--lr", "1e-2", "--out", str(tmp_path / "b.json")]) == 0
    assert main(TINY + ["--only", "supervised", "--checkpoint-dir", str(tmp_path / "fresh"), "--lr", "1e-2",
                        "--out", str(tmp_path / "c.json")]) == 0
    a, b, c = (json.loads((tmp_path / f"{n}.json").read_text())["supervised"] for n in "abc")
    assert len(list(ck.glob("ff_supervised_*.pt"))) == 2
    assert b["test_error"] == c["test_error"] and b["history"][-1]["layers"] == c["history"][-1]["layers"]
    assert b["history"][-1]["layers"] != a["history"][-1]["layers"]


def test_backprop_baseline_is_checkpointed_and_resumed(data, tmp_path):
    ck = tmp_path / "ck"
    argv = TINY + ["--only", "backprop", "--baseline-epochs", "2", "--checkpoint-dir", str(ck)]
    assert main(argv + ["--out", str(tmp_path / "a.json")]) == 0
    assert len(list(ck.glob("ff_backprop_*.pt"))) == 1
    assert main(argv + ["--out", str(tmp_path / "b.json")]) == 0  # finished: reloaded, not retrained
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["backprop"] for n in "ab")
    assert not a["partial"] and a["test_error"] == b["test_error"] and len(b["history"]) == 2
    # weight decay reaches the baseline's optimizer: its own checkpoint, and a different net
    assert main(argv + ["--baseline-weight-decay", "0.1", "--out", str(tmp_path / "c.json")]) == 0
    assert len(list(ck.glob("ff_backprop_*.pt"))) == 2
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["config"]["baseline_weight_decay"] == 0.1 and c["backprop"]["train_loss"] != a["train_loss"]


def test_cosine_schedule_anneals_the_baseline_to_zero_in_its_own_checkpoint(data, tmp_path):
    ck = tmp_path / "ck"
    argv = TINY + ["--only", "backprop", "--baseline-epochs", "3", "--checkpoint-dir", str(ck)]
    assert main(argv + ["--out", str(tmp_path / "a.json")]) == 0
    assert main(argv + ["--baseline-schedule", "cosine", "--out", str(tmp_path / "b.json")]) == 0
    assert len(list(ck.glob("ff_backprop_*.pt"))) == 2
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["backprop"] for n in "ab")
    assert [r["lr"] for r in a["history"]] == [pytest.approx(3e-3)] * 3  # the quick profile's lr, constant
    lrs = [r["lr"] for r in b["history"]]  # the lr each epoch trained with: 3e-3 * (1 + cos(pi t / 3)) / 2
    assert lrs == [pytest.approx(3e-3), pytest.approx(2.25e-3), pytest.approx(0.75e-3)]


def test_standardize_uses_the_training_pixels_statistics_for_every_split(data, tmp_path):
    from hw2_mlp.ff_run import FFRunConfig, load_mnist
    raw = load_mnist(FFRunConfig(limit_train=600, limit_test=300))
    std = load_mnist(FFRunConfig(limit_train=600, limit_test=300, standardize=True))
    mean, scale = raw[0].X.mean(), raw[0].X.std()
    assert abs(float(std[0].X.mean())) < 1e-5 and abs(float(std[0].X.std()) - 1) < 1e-4
    for r, s in zip(raw, std):  # validation and test: the training statistics, not their own
        assert torch.allclose(s.X, (r.X - mean) / scale) and torch.equal(s.y, r.y)
    argv = TINY + ["--only", "supervised", "--checkpoint-dir", str(tmp_path / "ck")]
    assert main(argv + ["--standardize", "1", "--out", str(tmp_path / "s.json")]) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    assert res["config"]["standardize"] is True and 0 <= res["supervised"]["test_error"] <= 1
