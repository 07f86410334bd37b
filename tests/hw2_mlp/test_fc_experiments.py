"""hw2_mlp.fc_experiments: the search design, the experiments' records on real (scikit-learn digits) data,
the stage cache of train_cifar, and, with CIFAR-10 present, the course split and preprocessing."""
import dataclasses
import math

import pytest
import torch

from common import load_dataset
from hw2_mlp import fc_experiments as fx
from hw2_mlp.train_cifar import _cached

TINY = dataclasses.replace(
    fx.QUICK_PLAN, two_layer_hidden=16, two_layer_epochs=10, two_layer_lr=1.0, overfit_n=30, overfit_epochs=5,
    overfit_nets=(("3-layer", (16, 16)),), overfit_lrs=(1e-2, 1e3), overfit_scales=(1e-1,),
    optim_hidden=(16, 16), optim_n=200, optim_epochs=2, dropout_hidden=(32,), dropout_n=100,
    dropout_epochs=2, dropout_ps=(0.0, 0.5), search_hidden=((16,), (32,)), search_candidates=2, search_n=150,
    search_epochs=1, finalists=3, final_epochs=2, batch_size=50)


@pytest.fixture(scope="module")
def digits():
    """Real 8x8 digits as the experiments' data dict (flattened, training mean subtracted)."""
    s = load_dataset("digits")
    mean = s.train.X.mean(0)

    def flat(X):
        return (X - mean).reshape(len(X), -1)

    return {"X_train": flat(s.train.X), "y_train": s.train.y, "X_val": flat(s.val.X), "y_val": s.val.y,
            "X_test": flat(s.test.X), "y_test": s.test.y}


def test_configs_come_in_dropout_pairs_and_cycle_widths():
    configs = fx.sample_configs(fx.FULL_PLAN)
    assert len(configs) == 2 * fx.FULL_PLAN.search_candidates
    low, high = fx.LR_RANGES["adam"]
    for i, (a, b) in enumerate(zip(configs[::2], configs[1::2])):
        assert b["id"] == a["id"] + "-nodrop" and b["dropout"] == 0.0 < a["dropout"]
        assert {k: v for k, v in a.items() if k not in ("id", "dropout")} == \
               {k: v for k, v in b.items() if k not in ("id", "dropout")}
        assert a["hidden"] == list(fx.FULL_PLAN.search_hidden[i % len(fx.FULL_PLAN.search_hidden)])
        assert low * 0.99 <= a["learning_rate"] <= high * 1.01
    assert fx.sample_configs(fx.FULL_PLAN) == configs  # seeded
    assert fx.sample_configs(dataclasses.replace(fx.FULL_PLAN, seed=1)) != configs


def test_subset_is_seeded_and_keeps_validation(digits):
    a, b = fx.subset(digits, 100, seed=3), fx.subset(digits, 100, seed=3)
    assert torch.equal(a["y_train"], b["y_train"]) and len(a["y_train"]) == 100
    assert a["X_val"] is digits["X_val"]
    assert len(fx.subset(digits, None)["y_train"]) == len(digits["y_train"])


def test_two_layer_record_and_weights(digits):
    record, W1 = fx.two_layer(digits, TINY)
    assert W1.shape == (64, 16)
    assert len(record["val_acc"]) == len(record["train_acc"]) == len(record["epoch_loss"]) == 10
    assert record["best_val_acc"] == max(record["val_acc"]) > 0.3  # chance is 0.1
    assert record["iterations"] == 10 * math.ceil(len(digits["y_train"]) / 100)
    assert len(record["loss"]) == math.ceil(record["iterations"] / 10)


def test_overfit_grid_counts_divergence_as_failure(digits):
    record = fx.overfit_grid(digits, TINY)
    summary = record["summary"]["3-layer"]
    assert summary["settings"] == len(record["runs"]) == 2
    by_lr = {r["lr"]: r for r in record["runs"]}
    assert by_lr[1e3]["diverged"] and by_lr[1e3]["train_acc"] == 0.0  # lr 1000 blows up
    assert summary["reached_100"] == sum(r["train_acc"] == 1.0 for r in record["runs"])
    assert summary["fraction_100"] == summary["reached_100"] / 2


def test_optimizers_share_init_and_batches(digits):
    record = fx.compare_optimizers(digits, TINY)
    assert set(record["runs"]) == {r for r, _ in TINY.optim_rules}
    first_losses = {rule: runs[0]["loss"][0] for rule, runs in record["runs"].items()}
    # the same initial weights and first batch: every rule starts from the same loss
    assert max(first_losses.values()) - min(first_losses.values()) < 1e-5


def test_dropout_record(digits):
    record = fx.compare_dropout(digits, TINY)
    for p, runs in record["runs"].items():
        assert [r["seed"] for r in runs] == list(TINY.dropout_seeds)
        for r in runs:
            assert r["gap"] == pytest.approx(r["val_loss"] - r["train_loss"])


def test_search_picks_the_best_finalist_on_validation(digits):
    logs = []
    record = fx.search(digits, TINY, log=logs.append)
    assert len(record["log"]) == 2 * TINY.search_candidates and len(record["finals"]) == TINY.finalists
    ranked = sorted(record["log"], key=lambda r: -r["best_val_acc"])
    assert [f["id"] for f in record["finals"]] == [r["id"] for r in ranked[:TINY.finalists]]
    best = max(record["finals"], key=lambda f: f["best_val_acc"])
    assert record["best"]["id"] == best["id"] and record["best"]["val_acc"] == best["best_val_acc"]
    assert 0.3 < record["best"]["test_acc"] <= 1.0
    assert record["search_train_images"] == TINY.search_n and len(logs) == 2 * 2 + 3


def test_search_resumes_from_its_checkpoints(digits, tmp_path):
    first = fx.search(digits, TINY, tmp_path, log=lambda m: None)
    files = sorted(p.name for p in tmp_path.iterdir())
    again = fx.search(digits, TINY, tmp_path, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    assert again["best"] == first["best"] and again["log"] == first["log"]


def test_finalists_trained_apart_are_reused(digits, tmp_path):
    """only_finalist trains one finalist's checkpoint (parallel processes); the full call reuses it."""
    assert fx.search(digits, TINY, tmp_path, log=lambda m: None, only_finalist=2) is None
    finals = sorted(p.name for p in tmp_path.glob("final_*.pt"))
    assert len(finals) == 1
    record = fx.search(digits, TINY, tmp_path, log=lambda m: None)
    assert len(list(tmp_path.glob("final_*.pt"))) == TINY.finalists
    assert finals[0] in {p.name for p in tmp_path.glob("final_*.pt")}
    assert record["finals"][1]["seconds"] > 0  # its training time is carried by the checkpoint


def test_stage_cache_is_keyed_by_the_stage_settings(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"seconds": 1.0, "value": len(calls)}

    a = _cached("dropout", TINY, tmp_path, compute)
    assert _cached("dropout", TINY, tmp_path, compute) == a and len(calls) == 1
    # a field of another experiment does not matter; one of this experiment does
    assert _cached("dropout", dataclasses.replace(TINY, optim_n=7), tmp_path, compute) == a
    b = _cached("dropout", dataclasses.replace(TINY, dropout_lr=1e-2), tmp_path, compute)
    assert b["value"] == 2


def test_load_cifar_course_split(data_root):
    if not (data_root / "cifar-10-batches-py" / "test_batch").exists():
        pytest.skip(f"needs CIFAR-10 under {data_root}/cifar-10-batches-py")
    plan = dataclasses.replace(fx.FULL_PLAN, n_train=2000, n_test=100)
    data = fx.load_cifar(data_root, plan)
    assert data["X_train"].shape == (2000, 3072) and data["X_val"].shape == (1000, 3072)
    assert data["X_test"].shape == (100, 3072)
    assert data["X_train"].mean(0).abs().max() < 1e-5  # the training mean image is subtracted
    assert torch.bincount(data["y_val"]).tolist() == [100] * 10  # stratified validation
