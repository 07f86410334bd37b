"""The backprop baseline's validation sweep (python -m hw2_mlp.ff_baseline): the choice, the CLI contract,
partial results and resume."""
import json

import pytest

import hw2_mlp.ff_baseline as ff_baseline
from common.errors import UsageError
from hw2_mlp.ff_baseline import choose, main, parse_decays

TINY = ["--hidden", "32", "--limit-train", "400", "--limit-test", "200", "--baseline-epochs", "2",
        "--threads", "1", "--no-progress"]


def test_parse_decays():
    assert parse_decays("0,1e-4,3e-4") == (0.0, 1e-4, 3e-4)
    for bad in ("0,x", "-1e-4", "nan", "1e-4,1e-4", ""):
        with pytest.raises(UsageError, match="--decays"):
            parse_decays(bad)


def test_choose_takes_the_lowest_validation_error_and_breaks_ties_towards_less_decay():
    rows = [{"baseline_weight_decay": d, "val_error": e} for d, e in ((1e-3, 0.02), (0.0, 0.03), (3e-4, 0.02))]
    assert choose(rows) == 3e-4
    assert choose(rows[:2]) == 1e-3


@pytest.mark.parametrize("argv, fragment", [
    (["--decays", "0,oops"], "--decays"),
    (["--decays", "-1"], "--decays"),
    (["--only", "supervised"], "--only"),
    (["--merge-val", "1"], "--merge-val"),
    (["--baseline-weight-decay", "1e-4"], "--baseline-weight-decay"),
    (["--baseline-epochs", "0"], "--baseline-epochs"),
    (["--baseline-schedule", "step"], "--baseline-schedule"),
    (["--profile", "huge"], "profile"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, fragment, tmp_path, capsys):
    out, ck = tmp_path / "res" / "b.json", tmp_path / "ck"
    assert main(TINY + argv + ["--out", str(out), "--checkpoint-dir", str(ck)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("python -m hw2_mlp.ff_baseline: error:"), err
    assert fragment in err, err
    assert not out.exists() and not ck.exists()


@pytest.fixture
def data(mnist_root, monkeypatch):
    monkeypatch.setenv("DLHW_DATA", str(mnist_root))
    return mnist_root


def test_sweep_chooses_on_validation_then_trains_on_everything(data, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(TINY + ["--decays", "0,0.5", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]) == 0
    res = json.loads(out.read_text())
    sel = res["selection"]
    assert [c["baseline_weight_decay"] for c in sel["candidates"]] == [0.0, 0.5]
    assert all("test_error" not in c and len(c["history"]) == 2 for c in sel["candidates"])
    assert sel["chosen"] == choose(sel["candidates"])
    # the sweep trains on 90 %, scores on the held-out 10 %; the final run trains on all of it
    assert res["data"]["sweep_train_images"] + res["data"]["val_images"] == res["data"]["train_images"]
    assert res["config"]["merge_val"] and res["config"]["baseline_weight_decay"] == sel["chosen"]
    bp = res["backprop"]
    assert not res["partial"] and not bp["partial"] and len(bp["history"]) == 2 and 0 <= bp["test_error"] <= 1
    printed = capsys.readouterr().out
    assert f"'chosen': {sel['chosen']}" in printed and f"'test_error': {bp['test_error']}" in printed


def test_ctrl_c_keeps_the_finished_candidates_and_the_same_command_resumes(data, tmp_path, capsys, monkeypatch):
    out, ck = tmp_path / "b.json", tmp_path / "ck"
    argv = TINY + ["--decays", "0,0.5", "--out", str(out), "--checkpoint-dir", str(ck)]
    real_write = ff_baseline.write_json_atomic
    writes = []

    def write_then_interrupt(path, obj):
        real_write(path, obj)
        writes.append(1)
        if len(writes) == 3:  # candidate 1: epoch 1, epoch 2, its scores -> Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(ff_baseline, "write_json_atomic", write_then_interrupt)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    partial = json.loads(out.read_text())
    assert partial["partial"] and len(partial["selection"]["candidates"]) == 1
    assert partial["selection"]["candidates"][0]["val_error"] is not None
    monkeypatch.setattr(ff_baseline, "write_json_atomic", real_write)
    assert main(argv) == 0
    resumed = json.loads(out.read_text())
    assert main(TINY + ["--decays", "0,0.5", "--out", str(tmp_path / "fresh.json"),
                        "--checkpoint-dir", str(tmp_path / "ck2")]) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert resumed["selection"]["candidates"][0]["val_error"] == fresh["selection"]["candidates"][0]["val_error"]
    assert resumed["backprop"]["test_error"] == fresh["backprop"]["test_error"]
    assert len(list(ck.glob("ff_backprop_*.pt"))) == 3  # two candidates and the final run
