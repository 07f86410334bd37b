"""The command line: exit 2 in one line with nothing written on bad input, a quick run, resume, Ctrl-C."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hw5_clip_peft.llm import experiment
from hw5_clip_peft.llm.llm_models import SENTIMENT_MODEL
from hw5_clip_peft.llm.reviews import SAMPLE_REVIEWS
from hw5_clip_peft.llm.run import main
from hw5_clip_peft.llm.twins import save_twin

SMALL = ["--per-class", "6", "--epochs", "2", "--num-problems", "3", "--k", "2", "--max-new-tokens", "6",
         "--threads", "1", "--no-progress"]


@pytest.fixture()
def offline_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)


BAD = {
    "unknown profile": ["--profile", "huge"],
    "unknown device": ["--device", "tpu"],
    "zero epochs": ["--epochs", "0"],
    "negative k": ["--k", "-1"],
    "zero learning rate": ["--lr", "0"],
    "unknown part": ["--parts", "sentiment,poetry"],
    "unknown flag": ["--bogus"],
    "missing model folder": ["--sentiment-model", "{tmp}/no-such-model"],
    "missing reviews": ["--reviews", "{tmp}/missing.tsv"],
    "full profile, weights not on this machine": ["--profile", "full"],
    "unwritable output": ["--out", "{tmp}/a-file/sub"],
}


@pytest.mark.parametrize("argv", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, tmp_path, capsys, offline_empty_cache):
    (tmp_path / "a-file").write_text("x")
    argv = [a.format(tmp=tmp_path) for a in argv]
    out = tmp_path / "out"
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("python -m hw5_clip_peft.llm.run: error: "), err
    assert not out.exists() and not (tmp_path / "a-file" / "sub").exists()


def test_quick_run_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--out", str(out), *SMALL]) == 0
    first = json.loads((out / "results.json").read_text(encoding="utf-8"))
    written = {p.name for p in out.iterdir()}
    assert written >= {"results.json", "report.md", "soft_prompt.png", "reasoning.png", "stages"}
    assert len(list(out.glob("soft_prompt-*.pt"))) == 1
    s, r = first["sentiment"], first["reasoning"]
    assert s["twin"] and r["twin"] and s["data"]["used"] == {"negative": 6, "positive": 6}
    assert [m["method"] for m in r["methods"]] == list(experiment.METHODS)
    assert "Pipeline check" in (out / "report.md").read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["--out", str(out), *SMALL]) == 0  # the same command again: every stage is reused
    assert capsys.readouterr().out.count("reusing") == 1 + len(experiment.METHODS)
    again = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert again["sentiment"] == s and again["reasoning"] == r
    assert main(["--out", str(out), *SMALL, "--seed", "1", "--parts", "reasoning"]) == 0
    assert "reusing" not in capsys.readouterr().out  # other settings never reuse a stage


def test_ctrl_c_is_exit_130_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_method", interrupted)
    assert main(["--out", str(out), *SMALL]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rerun the same command to resume" in err
    assert len(list((out / "stages").glob("sentiment-*.json"))) == 1 and not (out / "results.json").exists()
    monkeypatch.undo()
    assert main(["--out", str(out), *SMALL]) == 0
    assert capsys.readouterr().out.count("reusing") == 1  # the sentiment stage finished before the interrupt


@pytest.mark.slow
def test_full_profile_offline_with_a_real_size_gpt2_fa_folder(tmp_path, qwen_dir):
    """The full profile through the command a user types, on a folder shaped exactly like gpt2-fa
    (its config, random weights, a tokenizer written with save_pretrained) and a Qwen2.5 twin folder."""
    gpt2 = save_twin(tmp_path / "gpt2-fa", SENTIMENT_MODEL, size="real")
    out = tmp_path / "full"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "DLHW_DOWNLOAD": "0"}
    cmd = [sys.executable, "-m", "hw5_clip_peft.llm.run", "--profile", "full", "--out", str(out),
           "--sentiment-model", str(gpt2), "--reasoning-model", str(qwen_dir),
           "--reviews", str(SAMPLE_REVIEWS),
           "--per-class", "4", "--epochs", "1", "--virtual-tokens", "4", "--batch-size", "4",
           "--num-problems", "3", "--k", "2", "--max-new-tokens", "8", "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    s = results["sentiment"]
    assert results["config"]["profile"] == "full" and not s["twin"]
    assert s["parameters"]["base"] == 118_099_200  # gpt2-fa's size: 12 x 768, vocabulary 42,001
    assert s["parameters"]["trainable"] == 4 * 768
    assert s["data"]["used"] == {"negative": 4, "positive": 4}
    assert len(s["nearest_tokens"]) == 4 and "Pipeline" not in (out / "report.md").read_text(encoding="utf-8")


def test_edited_reviews_at_the_same_path_are_not_reused(tmp_path, capsys):
    reviews = tmp_path / "reviews.tsv"
    lines = SAMPLE_REVIEWS.read_text(encoding="utf-8").splitlines()
    reviews.write_text("\n".join(lines[:9] + lines[-8:]) + "\n", encoding="utf-8")
    argv = ["--out", str(tmp_path / "run"), "--parts", "sentiment", "--reviews", str(reviews), *SMALL]
    assert main(argv) == 0
    reviews.write_text("\n".join(lines[:1] + lines[2:10] + lines[-8:]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing" not in capsys.readouterr().out
    assert len(list((tmp_path / "run" / "stages").glob("sentiment-*.json"))) == 2
