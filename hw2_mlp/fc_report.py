"""Summaries of the hw2mlp.P1 results record (written by ``python -m hw2_mlp.train_cifar``) that the notebook
turns into tables, figures and sentences: per-seed statistics, so that a finding is stated only when every
seed agrees."""
from __future__ import annotations

import statistics

import numpy as np
import torch


def mean_spread(values) -> tuple[float, float, float]:
    """(mean, min, max) of a non-empty sequence."""
    values = list(values)
    return statistics.fmean(values), min(values), max(values)


def smooth(values, k: int = 10) -> list[float]:
    """Running mean over ``k`` consecutive values (k shortened to the length when there are fewer)."""
    v = np.asarray(values, dtype=float)
    k = max(1, min(k, len(v)))
    c = np.cumsum(np.insert(v, 0, 0.0))
    return ((c[k:] - c[:-k]) / k).tolist()


def weight_grid(W1, cols: int = 20, pad: int = 2) -> np.ndarray:
    """First-layer weights (3072, H) as one (rows*(32+pad), cols*(32+pad), 3) image in [0, 1]; each weight
    vector is a 32x32 RGB image scaled to its own range."""
    W1 = torch.as_tensor(np.asarray(W1), dtype=torch.float32)
    imgs = W1.T.reshape(-1, 3, 32, 32).permute(0, 2, 3, 1)
    low = imgs.amin(dim=(1, 2, 3), keepdim=True)
    imgs = ((imgs - low) / (imgs.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)).numpy()
    rows = -(-len(imgs) // cols)
    side = 32 + pad
    grid = np.ones((rows * side, cols * side, 3))
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        grid[r * side:r * side + 32, c * side:c * side + 32] = img
    return grid


def overfit_summary(record: dict) -> dict:
    """Per net: fraction of (lr, scale, seed) settings at 100 % training accuracy, the same fraction per seed,
    and the mean final training accuracy on the lr x scale grid (rows: lr, columns: weight scale)."""
    out = {}
    for net in record["summary"]:
        runs = [r for r in record["runs"] if r["net"] == net]
        lrs = sorted({r["lr"] for r in runs})
        scales = sorted({r["weight_scale"] for r in runs})
        seeds = sorted({r["seed"] for r in runs})
        grid = [[statistics.fmean(r["train_acc"] for r in runs if r["lr"] == lr and r["weight_scale"] == s)
                 for s in scales] for lr in lrs]
        per_seed = {seed: statistics.fmean(r["train_acc"] == 1.0 for r in runs if r["seed"] == seed)
                    for seed in seeds}
        scales_ok = sorted({r["weight_scale"] for r in runs if r["train_acc"] == 1.0})
        out[net] = {"fraction": record["summary"][net]["fraction_100"], "per_seed": per_seed, "lrs": lrs,
                    "scales_ok": scales_ok,
                    "scales": scales, "grid": grid, "settings": record["summary"][net]["settings"],
                    "reached": record["summary"][net]["reached_100"]}
    return out


def optimizer_summary(record: dict, last: int = 20) -> dict:
    """Per rule and seed: mean training loss over the last ``last`` iterations and final validation accuracy."""
    out = {}
    for rule, runs in record["runs"].items():
        out[rule] = {"final_loss": [statistics.fmean(r["loss"][-last:]) for r in runs],
                     "val_acc": [r["val_acc"][-1] for r in runs], "seeds": [r["seed"] for r in runs],
                     "learning_rate": runs[0]["learning_rate"]}
    return out


def dropout_summary(record: dict) -> dict:
    """Per dropout p: per-seed best validation accuracy, generalisation gap and training loss; and, for each
    p > 0, its per-seed differences to p = 0 (same seed: same subset, init and batch order)."""
    per_p = {p: {"best_val": [r["best_val_acc"] for r in runs], "gap": [r["gap"] for r in runs],
                 "train_loss": [r["train_loss"] for r in runs], "val_loss": [r["val_loss"] for r in runs]}
             for p, runs in record["runs"].items()}
    base = per_p[min(per_p, key=float)]
    deltas = {p: {"val": [a - b for a, b in zip(v["best_val"], base["best_val"])],
                  "gap": [a - b for a, b in zip(v["gap"], base["gap"])]}
              for p, v in per_p.items() if float(p) > 0}
    return {"per_p": per_p, "deltas": deltas}


def search_pairs(search: dict) -> list[dict]:
    """Each searched configuration with its dropout and without: both validation accuracies and the
    difference (with minus without)."""
    rows = {r["id"]: r for r in search["log"]}
    pairs = []
    for rid, row in rows.items():
        twin = rows.get(f"{rid}-nodrop")
        if twin is not None:
            pairs.append({"id": rid, "hidden": row["hidden"], "dropout": row["dropout"],
                          "with": row["best_val_acc"], "without": twin["best_val_acc"],
                          "delta": row["best_val_acc"] - twin["best_val_acc"]})
    return pairs


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table from a header row and rows of cells (``common.markdown_table`` takes dicts)."""
    from common import markdown_table

    return markdown_table([dict(zip(headers, row)) for row in rows], headers)
