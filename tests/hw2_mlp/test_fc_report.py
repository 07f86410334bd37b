"""hw2_mlp.fc_report: the per-seed summaries the notebook states its findings from."""
import numpy as np
import pytest
import torch

from hw2_mlp import fc_report as fr


def test_smooth_and_mean_spread():
    assert fr.smooth([1, 2, 3, 4], 2) == [1.5, 2.5, 3.5]
    assert fr.smooth([1, 3], 10) == [2.0]  # k shortened to the length
    assert fr.mean_spread([1, 2, 6]) == (3.0, 1, 6)


def test_weight_grid_layout_and_range():
    W1 = torch.randn(3072, 25)
    grid = fr.weight_grid(W1, cols=10, pad=2)
    assert grid.shape == (3 * 34, 10 * 34, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    # unit 11 sits in row 1, column 1, as its own image scaled to [0, 1]
    img = W1[:, 11].reshape(3, 32, 32).permute(1, 2, 0).numpy()
    expect = (img - img.min()) / (img.max() - img.min())
    np.testing.assert_allclose(grid[34:66, 34:66], expect, atol=1e-6)


def _overfit_record():
    runs = []
    for net, wins in (("3-layer", {(0.1, 0.1), (0.1, 0.01), (0.01, 0.1)}), ("5-layer", {(0.1, 0.1)})):
        for lr in (0.01, 0.1):
            for scale in (0.01, 0.1):
                for seed in (0, 1):
                    ok = (lr, scale) in wins and not (net == "3-layer" and seed == 1 and lr == 0.01)
                    runs.append({"net": net, "lr": lr, "weight_scale": scale, "seed": seed,
                                 "train_acc": 1.0 if ok else 0.5, "diverged": False})
    summary = {}
    for net in ("3-layer", "5-layer"):
        mine = [r for r in runs if r["net"] == net]
        hits = sum(r["train_acc"] == 1.0 for r in mine)
        summary[net] = {"settings": len(mine), "reached_100": hits, "fraction_100": hits / len(mine)}
    return {"runs": runs, "summary": summary}


def test_overfit_summary():
    s = fr.overfit_summary(_overfit_record())
    assert s["3-layer"]["per_seed"] == {0: 0.75, 1: 0.5}
    assert s["5-layer"]["per_seed"] == {0: 0.25, 1: 0.25}
    assert s["3-layer"]["grid"] == [[0.5, 0.75], [1.0, 1.0]]  # rows lr 0.01, 0.1; columns scale 0.01, 0.1
    assert s["5-layer"]["scales_ok"] == [0.1] and s["3-layer"]["scales_ok"] == [0.01, 0.1]
    assert s["3-layer"]["fraction"] == pytest.approx(5 / 8)


def test_optimizer_summary_uses_the_last_iterations():
    record = {"runs": {"sgd": [{"seed": 0, "learning_rate": 0.1, "loss": [9.0] * 5 + [2.0] * 20,
                                "val_acc": [0.1, 0.2]}]}}
    s = fr.optimizer_summary(record)
    assert s["sgd"]["final_loss"] == [2.0] and s["sgd"]["val_acc"] == [0.2]


def test_dropout_summary_pairs_by_seed():
    def run(seed, val, gap):
        return {"seed": seed, "best_val_acc": val, "gap": gap, "train_loss": 0.1, "val_loss": 0.1 + gap}

    record = {"runs": {"0.0": [run(0, 0.50, 0.9), run(1, 0.52, 1.0)],
                       "0.5": [run(0, 0.53, 0.5), run(1, 0.51, 0.7)]}}
    s = fr.dropout_summary(record)
    assert s["deltas"]["0.5"]["val"] == pytest.approx([0.03, -0.01])
    assert s["deltas"]["0.5"]["gap"] == pytest.approx([-0.4, -0.3])
    assert "0.0" not in s["deltas"]


def test_search_pairs():
    log = [{"id": "c0", "hidden": [8], "dropout": 0.3, "best_val_acc": 0.4},
           {"id": "c0-nodrop", "hidden": [8], "dropout": 0.0, "best_val_acc": 0.45}]
    (pair,) = fr.search_pairs({"log": log})
    assert pair["id"] == "c0" and pair["delta"] == pytest.approx(-0.05)


def test_table():
    text = fr.table(["a", "b"], [[1, "x"], [2, "y"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]
