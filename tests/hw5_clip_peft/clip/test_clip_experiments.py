"""The experiment configuration per profile, the written analysis, and the CLI under the project's contract
(exit 2 with one line and nothing written on bad input, 130 on Ctrl-C, results that resume from the cache)."""
import csv
import json
import os

import numpy as np
import pytest
import torch

from common import get_profile
from hw5_clip_peft.clip import clip_experiments as cx
from hw5_clip_peft.clip.analysis import findings
from hw5_clip_peft.clip.clip_models import CONVNEXT_BASE, CONVNEXT_XXLARGE, TINY, TINY_WIDE
from hw5_clip_peft.clip.studies import worst_confusion

PROG = "python -m hw5_clip_peft.clip.clip_experiments"


def test_profiles_pick_models_and_budgets():
    quick = cx.ClipExperimentConfig.for_profile(get_profile("quick"))
    assert (quick.base, quick.large) == (TINY, TINY_WIDE) and max(quick.shots) <= 6
    full = cx.ClipExperimentConfig.for_profile("full", base_checkpoint="b.bin")
    assert (full.base, full.large) == (CONVNEXT_BASE, CONVNEXT_XXLARGE)
    assert full.shots == (1, 2, 4, 8, 16) and full.base_checkpoint == "b.bin" and full.names == "curated"
    assert quick.class_embedding.num_epochs < full.class_embedding.num_epochs
    capped = cx.ClipExperimentConfig.for_profile("full", max_epochs=3, max_templates=2)
    assert {capped.coop.num_epochs, capped.linear_probe.num_epochs, capped.class_embedding.num_epochs} == {3}
    templates = capped.templates()
    assert len(templates.sweep) == 2 and all(len(t) == 2 for t in templates.ensembles.values())
    assert len(full.templates().ensembles["CLIP ImageNet 80"]) == 80


def test_worst_confusion_keeps_worst_classes_and_where_their_images_go():
    classes = ("a", "b", "c", "d")
    cm = np.array([[0, 4, 0, 0],   # a: always predicted as b (F1 0)
                   [0, 5, 0, 0],
                   [0, 0, 3, 2],
                   [0, 0, 0, 5]])
    report = [{"class": c, "f1": f, "support": int(cm[i].sum())}
              for i, (c, f) in enumerate(zip(classes, [0.0, 0.7, 0.75, 0.8]))]
    rates, names = worst_confusion({"confusion": cm, "report": report}, classes, n=1)
    assert names == ["a", "b"]
    assert rates.tolist() == [[0.0, 1.0], [0.0, 1.0]]


# ---------------------------------------------------------------------------------------------- analysis
def fabricated_results(large_top1: float, probe_top1: float, quick: bool = False) -> dict:
    """A results dict of the shape ``results_dict`` writes, with chosen numbers."""
    zero = {"template": "a photo of a {}, a type of dog.", "val_top1": 0.6, "test_top1": 0.62, "test_top5": 0.9}
    ens = {"ensemble": "dog ensemble", "templates": 18, "val_top1": 0.66, "test_top1": 0.65, "test_top5": 0.92}
    row = {"class": "Eskimo dog", "folder": "n02109961-Eskimo_dog", "precision": 0.2, "recall": 0.1,
           "accuracy": 0.1, "f1": 0.133, "support": 50, "worst": True}
    search = {"rows": [{}] * 26, "baseline": {"test_f1": 0.133}, "chosen_on_val": {"template": "t", "test_f1": 0.2},
              "chosen_on_test": {"template": "u", "test_f1": 0.3}}
    return {
        "pipeline_check": quick, "num_classes": 120, "classes_with_images": 120, "chance": 1 / 120,
        "test_images": 8580, "base": {"label": "ConvNeXt-Base"}, "large": {"label": "XXLarge", "logit_scale": 100.0},
        "zero_shot": {"single": zero, "best_single": {**zero, "test_top1": 0.63}, "ensembles": [ens],
                      "best_ensemble": ens, "sweep": [zero, {**zero, "template": "{}", "test_top1": 0.4}]},
        "name_styles": [{"names": "curated", "single test_top1": 0.62, "ensemble test_top1": 0.65},
                        {"names": "raw", "single test_top1": 0.58, "ensemble test_top1": 0.6}],
        "name_recall_changes": [{"raw": "chow", "curated": "Chow Chow", "recall raw": 0.2, "recall curated": 0.9},
                                {"raw": "pug", "curated": "pug", "recall raw": 0.9, "recall curated": 0.8},
                                {"raw": "Lhasa", "curated": "Lhasa Apso", "recall raw": 0.5, "recall curated": 0.6}],
        "per_class": [row], "worst_class": row, "confused_with": [["Siberian Husky", 30]],
        "worst_class_search": search, "per_class_selection": {"test_top1": 0.63},
        "comparison": [{"method": "(d) class embeddings", "train_top1": 0.9, "test_top1": 0.7},
                       {"method": "(e) linear probe", "train_top1": 0.99, "test_top1": probe_top1},
                       {"method": "CoOp, 4 context tokens", "train_top1": 0.8, "test_top1": 0.68}],
        "head_training": {"linear_probe": {"first_train_loss": 4.0, "last_train_loss": 1.0, "epochs_run": 9,
                                           "best_val_acc": 0.7, "init_val_acc": 0.01}},
        "few_shot": [{"shots": 1, "class embeddings test_top1": 0.66, "linear probe test_top1": 0.3},
                     {"shots": 16, "class embeddings test_top1": 0.7, "linear probe test_top1": 0.71}],
        "large_zero_shot": {"single": {"test_top1": large_top1}, "best_ensemble": {"test_top1": large_top1 + 0.01}},
    }


def test_analysis_describes_the_numbers_it_is_given():
    text = findings(fabricated_results(large_top1=0.75, probe_top1=0.8))
    assert "62.0 %" in text and "higher than ConvNeXt-Base by 13.0 points" in text
    assert "higher than the raw" in text
    assert "gains from renaming: chow -> Chow Chow (20.0 % -> 90.0 %); Lhasa -> Lhasa Apso" in text
    assert "Largest losses: pug -> pug (90.0 % -> 80.0 %)." in text
    assert "first matches the class-embedding head at 16 images per class" in text
    assert "optimism of 0.100" in text and "did not win" not in text


def test_a_surprising_full_run_is_reported_not_asserted():
    text = findings(fabricated_results(large_top1=0.5, probe_top1=0.3))  # XXLarge below Base, weak probe
    assert "lower than ConvNeXt-Base by 12.0 points" in text and "did not win" in text
    assert "linear probe (e) 30.0 % (lower than the zero-shot ensemble" in text


def test_quick_analysis_is_a_pipeline_check():
    text = findings(fabricated_results(0.5, 0.3, quick=True))
    assert text.startswith("- **Pipeline check, not a result.**") and "1/120" in text and "(a)**" not in text
    assert "training loss fell (4.000 -> 1.000" in text


# ---------------------------------------------------------------------------------------------- CLI contract
@pytest.fixture()
def clean_env(monkeypatch, tmp_path):
    """No data root, no downloads, an empty feature cache in tmp_path/cache (which must stay unwritten)."""
    for name in ("DLHW_DATA", "DLHW_PROFILE", "DLHW_DOWNLOAD", CONVNEXT_BASE.env_var, CONVNEXT_XXLARGE.env_var):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLHW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def bad_argvs(tmp_path, dogs):
    (tmp_path / "a_file").write_text("x")
    return {
        "bad profile": ["--profile", "bogus"],
        "bad device": ["--device", "tpu"],
        "missing data": [],
        "missing data root": ["--data-root", str(tmp_path / "nowhere")],
        "missing dogs dir": ["--dogs-dir", str(tmp_path / "nowhere")],
        "unwritable out": ["--dogs-dir", str(dogs), "--out", str(tmp_path / "a_file" / "out")],
        "zero limit": ["--dogs-dir", str(dogs), "--limit-per-class", "0"],
        "bad name style": ["--names", "fancy"],
        "checkpoint in quick": ["--dogs-dir", str(dogs), "--base-checkpoint", "b.bin"],
        "missing weights": ["--profile", "full", "--dogs-dir", str(dogs)],
        "missing checkpoint file": ["--profile", "full", "--dogs-dir", str(dogs), "--base-checkpoint",
                                    str(tmp_path / "nope.bin")],
        "unknown flag": ["--epochs", "3"],
    }


def test_bad_input_is_one_line_exit_2_and_nothing_written(clean_env, generated_dog_folder, capsys):
    dogs = generated_dog_folder(num_classes=3, per_class=3, size=8)
    out = clean_env / "out"
    for what, argv in bad_argvs(clean_env, dogs).items():
        assert cx.main([*argv, "--out", str(out)] if "--out" not in argv else argv) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"{PROG}: error: "), (what, err)
        assert not out.exists() and not (clean_env / "cache").exists(), what
    assert cx.main(["--profile", "full", "--dogs-dir", str(dogs), "--out", str(out)]) == 2
    assert "pass --base-checkpoint <path>" in capsys.readouterr().err  # the fix names the flag


def test_bogus_profile_variable_is_exit_2(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("DLHW_PROFILE", "bogus")
    assert cx.main(["--out", str(clean_env / "out")]) == 2
    assert "DLHW_PROFILE='bogus'" in capsys.readouterr().err and not (clean_env / "out").exists()


def test_ctrl_c_is_exit_130(clean_env, generated_dog_folder, monkeypatch, capsys):
    dogs = generated_dog_folder(num_classes=3, per_class=3, size=8)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cx, "run_studies", interrupted)
    assert cx.main(["--dogs-dir", str(dogs), "--out", str(clean_env / "out")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and not (clean_env / "out").exists()


def test_quick_run_writes_results_and_resumes_from_the_cache(clean_env, generated_dog_folder, capsys):
    dogs = generated_dog_folder(num_classes=3, per_class=6, size=32, classes_file=True)
    out = clean_env / "out"
    argv = ["--dogs-dir", str(dogs), "--out", str(out), "--max-templates", "3", "--max-epochs", "3",
            "--threads", "1"]
    assert cx.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["profile"] == "quick" and results["pipeline_check"] and results["num_classes"] == 120
    assert len(results["per_class"]) == 120 and sum(r["worst"] for r in results["per_class"]) == 1
    with open(out / "per_class.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 120 and rows[0]["folder"] == "n02085620-Chihuahua"
    assert [r["names"] for r in results["name_styles"]] == ["curated", "raw"]
    assert results["analysis"].startswith("- **Pipeline check") and "Pipeline check" in (out / "report.md").read_text()
    assert not any(results["base"]["cache_hits"].values())
    assert cx.main(argv) == 0  # the same command again: every feature is read back from the cache
    again = json.loads((out / "results.json").read_text())
    assert all(again["base"]["cache_hits"].values()) and all(again["large"]["cache_hits"].values())
    assert again["comparison"] == results["comparison"]
    capsys.readouterr()


@pytest.mark.slow
def test_full_profile_end_to_end_with_a_random_convnext_base_checkpoint(data_root, clean_env, capsys):
    """The full path a user with real weights takes, through the same CLI: the real ConvNeXt-Base
    architecture with random weights saved in the hub's file format, on the real sample (1 image per class
    and split, 2 templates per list, 3 epochs per head, to fit a 2-core CI box). Part (f) reuses ConvNeXt-Base
    (XXLarge's shapes and loading step are checked on the meta device in test_clip_models)."""
    import open_clip

    sample = data_root / "stanford_dogs_sample"
    if not sample.is_dir():
        pytest.skip(f"needs the Stanford Dogs sample under {data_root}")
    torch.manual_seed(0)
    model = open_clip.create_model("convnext_base", pretrained=None)
    checkpoint = clean_env / "weights" / "open_clip_pytorch_model.bin"
    checkpoint.parent.mkdir()
    torch.save(model.state_dict(), checkpoint)
    del model
    out = clean_env / "out"
    argv = ["--profile", "full", "--device", "cpu", "--dogs-dir", str(sample), "--base-checkpoint",
            str(checkpoint), "--large-model", "convnext_base", "--large-checkpoint", str(checkpoint),
            "--limit-per-class", "1", "--max-templates", "2", "--max-epochs", "3", "--batch-size", "8",
            "--num-workers", "0", "--threads", str(min(2, os.cpu_count() or 1)), "--out", str(out)]
    assert cx.main(argv) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["profile"] == "full" and not results["pipeline_check"]
    assert results["base"]["weights"] == "laion400m_s13b_b51k (open_clip_pytorch_model.bin)"
    assert results["base"]["embed_dim"] == 512 and results["large"]["arch"] == "convnext_base"
    assert len(results["per_class"]) == 120 and results["test_images"] == 10
    assert results["analysis"].startswith("- **(a)**") and "**(f)**" in results["analysis"]
    assert [r["names"] for r in results["name_styles"]] == ["curated", "raw"]
