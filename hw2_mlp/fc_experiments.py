"""The CIFAR-10 experiments of hw2mlp.P1, each a function of (data, plan) returning a JSON-able record.

    data = load_cifar(root, plan)            # course split, mean image subtracted, flattened
    two_layer(data, plan)                    # TwoLayerNet + SGD to the course's 50 % bar
    overfit_grid(data, plan)                 # 50 images, 3-layer vs 5-layer, lr x weight-scale grid
    compare_optimizers(data, plan)           # SGD, SGD+momentum, RMSProp, Adam on one subset, several seeds
    compare_dropout(data, plan)              # dropout on/off on a small subset, several seeds
    search(data, plan)                       # random search (each config with and without dropout), finalists
                                             # retrained on all 49,000 images, the best scored once on test

:data:`FULL_PLAN` is the homework; :data:`QUICK_PLAN` the few-minute pipeline check of the same code on a
small CIFAR-10 subset. ``python -m hw2_mlp.train_cifar`` runs them and writes the results JSON the notebook
reads. Long runs checkpoint every epoch under ``checkpoint_dir`` (file names carry
``common.io.settings_key`` of every setting), so rerunning the same command resumes.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common import NonFiniteLossError, load_dataset

from .fc_networks import FullyConnectedNet, TwoLayerNet
from .optim import UPDATE_RULES
from .solver import Solver

# Adam-like rules take steps of about lr; the SGD rules step lr * gradient, so their useful range is higher.
LR_RANGES = {"adam": (2e-4, 2e-3), "rmsprop": (5e-5, 5e-4), "sgd_momentum": (3e-3, 3e-2), "sgd": (3e-2, 3e-1)}


@dataclass(frozen=True)
class Plan:
    """What one profile spends on each experiment (the course split: 49,000 / 1,000 / 10,000)."""

    n_train: int | None = None          # None: all 49,000 training images
    n_val: int | None = None            # None: the 1,000 validation images
    n_test: int | None = None           # None: the official 10,000
    seed: int = 0
    # TwoLayerNet with plain SGD (the assignment's first model)
    two_layer_hidden: int = 200
    two_layer_lr: float = 0.3
    two_layer_reg: float = 0.0
    two_layer_epochs: int = 12
    # overfitting 50 images: hidden widths of the 3-layer and 5-layer nets, and the grid
    overfit_n: int = 50
    overfit_epochs: int = 20
    overfit_nets: tuple = (("3-layer", (100, 100)), ("5-layer", (100, 100, 100, 100)))
    overfit_lrs: tuple = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    overfit_scales: tuple = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    overfit_seeds: tuple = (0, 1)
    # update rules: one deep net with a small-scale init, same batches and init per seed
    optim_hidden: tuple = (100, 100, 100, 100, 100)
    optim_n: int = 4000
    optim_epochs: int = 5
    optim_scale: float = 5e-2
    optim_rules: tuple = (("sgd", 1e-2), ("sgd_momentum", 1e-2), ("rmsprop", 1e-4), ("adam", 1e-3))
    optim_seeds: tuple = (0, 1, 2)
    # dropout on/off where overfitting is easy
    dropout_hidden: tuple = (512, 512)
    dropout_n: int = 500
    dropout_epochs: int = 25
    dropout_lr: float = 5e-4
    dropout_ps: tuple = (0.0, 0.5)
    dropout_seeds: tuple = (0, 1, 2)
    # the search for the best FullyConnectedNet
    update_rule: str = "adam"
    batch_size: int = 200
    lr_decay: float = 0.95
    search_hidden: tuple = ((512, 512), (512, 512, 512), (1024, 512), (1024, 1024))
    search_dropouts: tuple = (0.1, 0.2, 0.3, 0.5)
    search_reg: tuple = (1e-6, 3e-4)     # log-uniform range of reg (penalty reg * sum ||W||^2)
    search_candidates: int = 5           # sampled configs, each trained with its dropout and without
    search_n: int = 5000                 # a budget for 2 shared CPU cores: short runs on a subset rank the
    search_epochs: int = 5               # configs, and only the finalists see all 49,000 images
    finalists: int = 2                   # best search runs retrained on all training images
    final_epochs: int = 10


FULL_PLAN = Plan()
QUICK_PLAN = Plan(n_train=2000, n_val=500, n_test=500, two_layer_hidden=50, two_layer_epochs=3,
                  overfit_epochs=15, overfit_lrs=(1e-2, 1e-1), overfit_scales=(1e-2, 1e-1), overfit_seeds=(0,),
                  optim_hidden=(50, 50, 50), optim_n=1000, optim_epochs=2, optim_seeds=(0,),
                  dropout_hidden=(128,), dropout_n=200, dropout_epochs=5, dropout_seeds=(0,),
                  search_hidden=((64,), (128, 64)), search_candidates=1, search_n=1000, search_epochs=2,
                  finalists=1, final_epochs=2)
PLANS = {"quick": QUICK_PLAN, "full": FULL_PLAN}


# ---------------------------------------------------------------------------------------------- data
def load_cifar(root: str | Path | None, plan: Plan, device: torch.device | str = "cpu") -> dict:
    """The course split of CIFAR-10 (1,000 stratified validation images out of the 50,000 training ones, the
    official 10,000 test), limited per ``plan``; the training mean image subtracted, images flattened.

    Returns X_train (N, 3072) float32, y_train (N,), X_val, y_val, X_test, y_test, mean (3, 32, 32), summary.
    Raises ``common.DataNotFoundError`` when CIFAR-10 is not under ``root``.
    """
    splits = load_dataset("cifar10", root=root, val_fraction=0.02, seed=plan.seed)
    train = splits.train.head(plan.n_train, plan.seed)
    val, test = splits.val.head(plan.n_val, plan.seed), splits.test.head(plan.n_test, plan.seed)
    mean = train.X.mean(dim=0)

    def flat(X):
        return (X - mean).reshape(len(X), -1).to(device)

    return {"X_train": flat(train.X), "y_train": train.y.to(device), "X_val": flat(val.X),
            "y_val": val.y.to(device), "X_test": flat(test.X), "y_test": test.y.to(device), "mean": mean,
            "classes": list(splits.classes),
            "summary": f"CIFAR-10: train {len(train)}, val {len(val)}, test {len(test)} images of 3x32x32"}


def subset(data: dict, n_train: int | None, seed: int = 0) -> dict:
    """The Solver's data dict with the first ``n_train`` of a seeded permutation of the training images."""
    X, y = data["X_train"], data["y_train"]
    if n_train is not None and n_train < len(y):
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n_train].to(y.device)
        X, y = X[idx], y[idx]
    return {"X_train": X, "y_train": y, "X_val": data["X_val"], "y_val": data["y_val"]}


# ---------------------------------------------------------------------------------------------- helpers
def _net(hidden, data, *, seed: int, weight_scale="he", dropout=0.0, reg=0.0) -> FullyConnectedNet:
    return FullyConnectedNet(list(hidden), input_dim=data["X_train"].shape[1], num_classes=10, dropout=dropout,
                             reg=reg, weight_scale=weight_scale, device=data["X_train"].device,
                             generator=torch.Generator().manual_seed(seed))


def _epoch_means(losses: list[float], epochs: int) -> list[float]:
    per = len(losses) // max(epochs, 1)
    return [sum(losses[i * per:(i + 1) * per]) / per for i in range(epochs)] if per else []


def _every(losses: list[float], k: int) -> list[float]:
    """Means of consecutive blocks of ``k`` iterations (a loss curve small enough for a JSON file)."""
    return [sum(losses[i:i + k]) / len(losses[i:i + k]) for i in range(0, len(losses), k)]


def _record(solver: Solver, loss_every: int = 1) -> dict:
    return {"train_acc": solver.train_acc_history, "val_acc": solver.val_acc_history,
            "best_val_acc": solver.best_val_acc, "loss": _every(solver.loss_history, loss_every),
            "loss_every": loss_every, "iterations": len(solver.loss_history),
            "epoch_loss": _epoch_means(solver.loss_history, len(solver.val_acc_history)),
            "seconds": round(solver.train_seconds, 2)}


def _train(model, data, *, mask_seed: int, checkpoint_dir, name: str, progress=None, **options) -> Solver:
    """Seed the dropout masks (global RNG, restored on resume), then train with checkpoints if asked."""
    torch.manual_seed(mask_seed)
    solver = Solver(model, data, checkpoint_dir=str(checkpoint_dir) if checkpoint_dir else None,
                    checkpoint_name=name, run_settings={"mask_seed": mask_seed}, progress=progress, **options)
    return solver.train()


# ---------------------------------------------------------------------------------------------- experiments
def two_layer(data: dict, plan: Plan, checkpoint_dir=None, progress=None) -> dict:
    """TwoLayerNet (Linear-ReLU-Linear) trained with SGD and per-epoch lr decay, on all training images.
    Returns curves, best validation accuracy and the first-layer weights W1 (3072, H) of the best epoch."""
    model = TwoLayerNet(input_dim=data["X_train"].shape[1], hidden_dim=plan.two_layer_hidden,
                        weight_scale=1e-3, reg=plan.two_layer_reg, device=data["X_train"].device,
                        generator=torch.Generator().manual_seed(plan.seed))
    solver = _train(model, subset(data, None), mask_seed=plan.seed, checkpoint_dir=checkpoint_dir,
                    name="two_layer", progress=progress, update_rule="sgd",
                    optim_config={"learning_rate": plan.two_layer_lr}, lr_decay=0.95, batch_size=100,
                    num_epochs=plan.two_layer_epochs, seed=plan.seed)
    record = _record(solver, loss_every=10)
    record.update(hidden=plan.two_layer_hidden, learning_rate=plan.two_layer_lr, reg=plan.two_layer_reg)
    return record, model.params["W1"].detach().cpu()


def overfit_grid(data: dict, plan: Plan) -> dict:
    """Train each net on ``overfit_n`` images with SGD for every (lr, weight scale, seed); record the final
    training accuracy. The share of settings reaching 100 % says how hard each depth is to tune."""
    tic = time.perf_counter()
    small = subset(data, plan.overfit_n, plan.seed)
    small["X_val"], small["y_val"] = data["X_val"][:200], data["y_val"][:200]  # only a sanity readout here
    runs = []
    for name, hidden in plan.overfit_nets:
        for lr in plan.overfit_lrs:
            for scale in plan.overfit_scales:
                for seed in plan.overfit_seeds:
                    model = _net(hidden, small, seed=seed, weight_scale=scale)
                    try:
                        s = _train(model, small, mask_seed=seed, checkpoint_dir=None, name="overfit",
                                   progress=False, update_rule="sgd", optim_config={"learning_rate": lr},
                                   batch_size=25, num_epochs=plan.overfit_epochs, num_train_samples=None,
                                   seed=seed)
                        train_acc, curve, diverged = s.train_acc_history[-1], s.train_acc_history, False
                    except NonFiniteLossError:  # a diverged setting counts as a failure to overfit
                        train_acc, curve, diverged = 0.0, [], True
                    runs.append({"net": name, "lr": lr, "weight_scale": scale, "seed": seed,
                                 "train_acc": train_acc, "curve": curve, "diverged": diverged})
    summary = {}
    for name, _ in plan.overfit_nets:
        mine = [r for r in runs if r["net"] == name]
        summary[name] = {"settings": len(mine), "reached_100": sum(r["train_acc"] == 1.0 for r in mine),
                         "fraction_100": sum(r["train_acc"] == 1.0 for r in mine) / len(mine),
                         "diverged": sum(r["diverged"] for r in mine)}
    return {"runs": runs, "summary": summary, "seconds": round(time.perf_counter() - tic, 2)}


def compare_optimizers(data: dict, plan: Plan) -> dict:
    """Each update rule trains the same deep net (same init and batches per seed) on one subset."""
    tic = time.perf_counter()
    sub = subset(data, plan.optim_n, plan.seed)
    runs = {rule: [] for rule, _ in plan.optim_rules}
    for seed in plan.optim_seeds:
        for rule, lr in plan.optim_rules:
            model = _net(plan.optim_hidden, sub, seed=seed, weight_scale=plan.optim_scale)
            s = _train(model, sub, mask_seed=seed, checkpoint_dir=None, name="optim", progress=False,
                       update_rule=rule, optim_config={"learning_rate": lr}, batch_size=100,
                       num_epochs=plan.optim_epochs, seed=seed)
            runs[rule].append({"seed": seed, "learning_rate": lr, **_record(s)})
    return {"runs": runs, "seconds": round(time.perf_counter() - tic, 2)}


def compare_dropout(data: dict, plan: Plan) -> dict:
    """Nets with and without dropout on ``dropout_n`` images (Adam), per seed: best validation accuracy and
    the test-mode training and validation losses of the kept (best-validation) weights."""
    from .layers import softmax_loss

    tic = time.perf_counter()
    runs = {str(p): [] for p in plan.dropout_ps}
    for seed in plan.dropout_seeds:
        sub = subset(data, plan.dropout_n, plan.seed + seed)
        for p in plan.dropout_ps:
            model = _net(plan.dropout_hidden, sub, seed=seed, dropout=p)
            s = _train(model, sub, mask_seed=seed, checkpoint_dir=None, name="dropout", progress=False,
                       update_rule="adam", optim_config={"learning_rate": plan.dropout_lr}, batch_size=50,
                       num_epochs=plan.dropout_epochs, num_train_samples=None, seed=seed)
            with torch.no_grad():
                train_loss = float(softmax_loss(model.loss(sub["X_train"]), sub["y_train"])[0])
                val_loss = float(softmax_loss(model.loss(sub["X_val"]), sub["y_val"])[0])
            runs[str(p)].append({"seed": seed, "train_loss": train_loss, "val_loss": val_loss,
                                 "gap": val_loss - train_loss, **_record(s)})
    return {"runs": runs, "seconds": round(time.perf_counter() - tic, 2)}


def sample_configs(plan: Plan) -> list[dict]:
    """``search_candidates`` configurations (seeded), each paired with its dropout-free twin. The widths take
    turns (every architecture gets its share of a small budget); lr, reg and dropout are drawn at random."""
    rng = random.Random(plan.seed)
    low, high = LR_RANGES[plan.update_rule]
    configs = []
    for i in range(plan.search_candidates):
        base = {"hidden": list(plan.search_hidden[i % len(plan.search_hidden)]),
                "learning_rate": float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.2e}"),
                "reg": float(f"{math.exp(rng.uniform(*map(math.log, plan.search_reg))):.2e}"),
                "dropout": rng.choice(plan.search_dropouts)}
        configs.append({"id": f"c{i}", **base})
        configs.append({"id": f"c{i}-nodrop", **base, "dropout": 0.0})
    return configs


def _fit_config(config: dict, data: dict, plan: Plan, epochs: int, checkpoint_dir, name: str, progress):
    model = _net(config["hidden"], data, seed=plan.seed, dropout=config["dropout"], reg=config["reg"])
    s = _train(model, data, mask_seed=plan.seed, checkpoint_dir=checkpoint_dir, name=name, progress=progress,
               update_rule=plan.update_rule, optim_config={"learning_rate": config["learning_rate"]},
               lr_decay=plan.lr_decay, batch_size=plan.batch_size, num_epochs=epochs, seed=plan.seed)
    return model, s


def search(data: dict, plan: Plan, checkpoint_dir=None, progress=None, log=print,
           only_finalist: int | None = None) -> dict | None:
    """Random search on ``search_n`` training images for ``search_epochs``; the ``finalists`` best (by
    validation accuracy) retrained on all training images for ``final_epochs``; the best finalist (by
    validation accuracy) is scored on the test split, once.

    ``only_finalist=k`` (1-based) trains only the k-th finalist into ``checkpoint_dir`` and returns None, so
    finalists can train in parallel processes; a later full call then finds every checkpoint."""
    sub = subset(data, plan.search_n, plan.seed)
    log_rows = []
    for config in sample_configs(plan):
        _, s = _fit_config(config, sub, plan, plan.search_epochs, checkpoint_dir, "search", progress)
        log_rows.append({**config, **_record(s)})
        log(f"search {config['id']}: {config} -> best val {s.best_val_acc:.4f}")
    ranked = sorted(log_rows, key=lambda r: -r["best_val_acc"])
    finals, best, best_model = [], None, None
    full = subset(data, None)
    for k, row in enumerate(ranked[:plan.finalists], start=1):
        if only_finalist is not None and k != only_finalist:
            continue
        config = {k: row[k] for k in ("id", "hidden", "learning_rate", "reg", "dropout")}
        model, s = _fit_config(config, full, plan, plan.final_epochs, checkpoint_dir, "final", progress)
        finals.append({**config, **_record(s, loss_every=10)})
        log(f"final {config['id']}: best val {s.best_val_acc:.4f}")
        if best is None or s.best_val_acc > best["best_val_acc"]:
            best, best_model = finals[-1], model  # the model holds its best-validation weights
    if only_finalist is not None:
        return None
    with torch.no_grad():  # the test split, once, for the model chosen on validation
        pred = best_model.predict(data["X_test"])
        test_acc = float((pred == data["y_test"]).double().mean())
    return {"search_train_images": len(sub["y_train"]), "log": log_rows, "finals": finals,
            "best": {**{k: best[k] for k in ("id", "hidden", "learning_rate", "reg", "dropout")},
                     "val_acc": best["best_val_acc"], "test_acc": test_acc,
                     "epochs": plan.final_epochs, "update_rule": plan.update_rule,
                     "batch_size": plan.batch_size, "lr_decay": plan.lr_decay},
            "seconds": round(sum(r["seconds"] for r in log_rows + finals), 2)}


STAGES = ("two_layer", "overfit", "optimizers", "dropout", "search")


def plan_dict(plan: Plan) -> dict:
    return dataclasses.asdict(plan)
