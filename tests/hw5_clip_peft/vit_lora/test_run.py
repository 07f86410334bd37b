"""``python -m hw5_clip_peft.vit_lora.run``: the CLI contract (exit 2 and nothing written on bad input, 130 on
Ctrl-C), a complete quick run whose report is built from its results, resuming, and (slow) the full profile's
code path with a random-weight ViT-Base folder on the real sample photos.

Generated images (coloured noise per class, in a folder named ``generated_food``) stand in for photos only
where a test passes that folder explicitly with ``--data``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw5_clip_peft.vit_lora import run
from hw5_clip_peft.vit_lora.report import compare_text, report_markdown, training_text

CLASSES = ("apple_pie", "baklava", "bibimbap")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.delenv("DLHW_DOWNLOAD", raising=False)
    monkeypatch.delenv("DLHW_DATA", raising=False)
    monkeypatch.delenv("DLHW_PROFILE", raising=False)
    monkeypatch.setenv("DLHW_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def generated_food(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "generated_food"
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(5):
            colour = np.roll([200, 40, 60], k)
            pixels = np.clip(rng.normal(colour, 30, size=(40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _exit_2(argv, capsys, out: Path) -> str:
    code = run.main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith(run.PROG + ": error:"), err
    assert not out.exists(), "nothing may be written on bad input"
    return err


@pytest.mark.parametrize("argv, says", [
    (["--profile", "huge"], "profile"),
    (["--device", "tpu"], "device"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--seed", "-3"], "--seed"),
    (["--train-limit", "2", "--hold-out", "2"], "--hold-out"),
    (["--bogus"], "unrecognized"),
    (["--data", "sample"], "no data root"),
    (["--data", "/no/such/folder"], "neither"),
    (["--data", "hub"], "DLHW_DOWNLOAD=1"),
])
def test_bad_flags_exit_2_and_write_nothing(argv, says, capsys, tmp_path, generated_food):
    if "--data" not in argv:
        argv = [*argv, "--data", str(generated_food)]
    assert says in _exit_2(argv, capsys, tmp_path / "out")


def test_missing_weights_offline_exit_2(capsys, tmp_path, generated_food):
    data = ["--data", str(generated_food)]
    assert "DLHW_DOWNLOAD=1" in _exit_2(["--model", "someone/no-such-vit", *data], capsys, tmp_path / "out")
    assert "does not exist" in _exit_2(["--model", str(tmp_path / "vit"), *data], capsys, tmp_path / "out")
    assert "DLHW_DOWNLOAD=1" in _exit_2(["--profile", "full", *data], capsys, tmp_path / "out")


def test_missing_data_root_and_unwritable_out_exit_2(capsys, tmp_path, generated_food):
    assert "--data-root" in _exit_2(["--data-root", str(tmp_path / "nowhere")], capsys, tmp_path / "out")
    assert "food101_sample" in _exit_2(["--data-root", str(tmp_path)], capsys, tmp_path / "out")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in _exit_2(["--data", str(generated_food)], capsys, blocker / "out")
    code = run.main(["--data", str(generated_food), "--out", str(blocker)])
    assert code == 2 and "is a file" in capsys.readouterr().err and blocker.read_text() == "x"


def test_ctrl_c_exits_130_in_one_line(monkeypatch, capsys, tmp_path, generated_food):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(run.LoraExperiment, "run_all", interrupted)
    code = run.main(["--data", str(generated_food), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 130 and len(err.splitlines()) == 1 and "rerun the same command" in err


QUICK = ["--epochs", "2", "--batch-size", "4", "--latency-repeats", "2", "--compare-epochs", "1",
         "--no-vit-base-check"]


@pytest.fixture(scope="module")
def quick_run(generated_food, tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "out"
    argv = ["--data", str(generated_food), "--out", str(out), *QUICK]
    assert run.main(argv) == 0
    return out, argv


def test_quick_run_writes_results_report_and_adapter(quick_run):
    out, _ = quick_run
    results = json.loads((out / run.RESULTS).read_text())
    report = (out / run.REPORT).read_text()
    assert results["profile"] == "quick" and results["data"]["classes"] == 3
    assert results["data"]["train"] + results["data"]["val"] + 1 == 15 and len(results["data"]["held_out"]) == 1
    assert len(results["training"]["epochs"]) == 2 and results["merge"]["passed"]
    pred = results["prediction"][0]
    assert pred["image"] == results["data"]["held_out"][0] and len(pred["top"]) == 3  # 3-way head: top-3
    methods = [r["method"] for r in results["compare"]["rows"]]
    assert methods == ["LoRA r=4", "LoRA r=8", "LoRA r=16", "head-only", "full"]
    lora = results["lora"]
    assert lora["trainable"] == lora["formula"] and lora["trainable_pct_of_base"] == pytest.approx(
        100 * lora["trainable"] / lora["base"])
    # the prose carries the run's own numbers, and one denominator for the trainable share
    assert f"{lora['trainable_pct_of_base']:.2f} % of the {lora['base']:,} parameters" in report
    assert f"{results['training']['best_val_accuracy']:.3f}" in report and "pipeline check" in report
    assert pred["image"] in report
    assert (out / run.ADAPTER / "adapter_config.json").is_file()
    assert "classifier" in json.loads((out / run.ADAPTER / "adapter_config.json").read_text())["modules_to_save"]


def test_rerun_resumes_from_the_finished_checkpoint(quick_run, capsys):
    out, argv = quick_run
    first = json.loads((out / run.RESULTS).read_text())
    assert run.main([*argv, "--no-compare"]) == 0  # other settings: trained afresh under another key
    other = json.loads((out / run.RESULTS).read_text())
    assert other["settings_key"] != first["settings_key"] and "compare" not in other
    assert run.main(argv) == 0
    again = json.loads((out / run.RESULTS).read_text())
    assert again["settings_key"] == first["settings_key"]
    # the epochs come back from the checkpoint's trainer state, not from training again
    assert again["training"]["epochs"] == first["training"]["epochs"]
    keys = {p.name for p in (out / "checkpoints").iterdir()}
    assert f"lora-{first['settings_key']}" in keys and len(keys) == 2


@pytest.mark.parametrize("damage", ["trainer_state.json", "adapter_model.safetensors", "optimizer.pt"])
def test_a_corrupt_checkpoint_exits_2_before_any_work(quick_run, tmp_path, capsys, damage):
    import shutil

    out, argv = quick_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    key = json.loads((copy / run.RESULTS).read_text())["settings_key"]
    trainer = copy / "checkpoints" / f"lora-{key}" / "trainer"
    last = max(trainer.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (last / damage).write_bytes(b"\x00 truncated")
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    code = run.main([*argv[:argv.index("--out")], "--out", str(copy), *argv[argv.index("--out") + 2:]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(last) in err and "delete" in err, err
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before  # nothing written


def test_report_branches_for_a_pretrained_model(quick_run):
    out, _ = quick_run
    results = json.loads((out / run.RESULTS).read_text())
    results["settings"]["model"] = "google/vit-base-patch16-224-in21k"
    results["model"]["name"] = results["settings"]["model"]
    text = training_text(results)
    assert "pipeline check" not in text and f"{results['training']['best_val_accuracy']:.4f}" in text
    best = max(results["compare"]["rows"], key=lambda r: r["val_accuracy"])
    assert f"Best validation accuracy: {best['method']}" in compare_text(results)
    assert report_markdown(results).startswith("# hw5.P5")


@pytest.mark.slow
def test_full_profile_with_a_random_vit_base_folder_on_the_sample(data_root, tmp_path, capsys):
    """The full profile's code path offline: ViT-Base/16 (random weights) written with save_pretrained plus
    its image processor, the real sample photos, through the CLI a user calls. Few images and steps: ViT-Base
    at 224 px costs about a second per image per pass on one CPU core."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    if not (data_root / "food101_sample").is_dir():
        pytest.skip(f"needs {data_root}/food101_sample")
    folder = tmp_path / "vit-base-random"
    ViTForImageClassification(ViTConfig()).save_pretrained(folder)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(folder)
    out = tmp_path / "out"
    argv = ["--profile", "full", "--model", str(folder), "--data", "sample", "--data-root", str(data_root),
            "--device", "cpu", "--threads", "2", "--train-limit", "5", "--val-limit", "2", "--epochs", "1",
            "--batch-size", "2", "--latency-repeats", "1", "--no-compare", "--out", str(out)]
    assert run.main(argv) == 0, capsys.readouterr().err
    results = json.loads((out / run.RESULTS).read_text())
    assert results["profile"] == "full" and results["model"]["kind"] == "local folder"
    assert results["model"]["hidden_size"] == 768 and results["model"]["num_labels"] == 101
    assert results["lora"]["trainable"] == 667_493 and results["merge"]["passed"]
    assert (results["data"]["train"], results["data"]["val"]) == (4, 2)
    assert len(results["prediction"][0]["top"]) == 5 and "vit_base_shapes" not in results
    assert "pipeline check" not in (out / run.REPORT).read_text().split("**Training")[1].split("\n")[0]


@pytest.mark.slow
def test_merge_benchmark_runs_at_vit_base_width(capsys):
    """benchmarks/bench_lora_merge.py at ViT-Base width and depth on 32 px inputs (4 patches): the merge check
    passes and the table has the three models."""
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_lora_merge.py"
    spec = importlib.util.spec_from_file_location("bench_lora_merge", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--image-size", "32", "--batch-sizes", "1", "--repeats", "1", "--rounds", "1", "--device", "cpu"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("| base", "| LoRA unmerged", "| LoRA merged"))
    assert bench.main(["--rank", "0"]) == 2
