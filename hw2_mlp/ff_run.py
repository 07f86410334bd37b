"""Forward-Forward on MNIST end to end: supervised FF, unsupervised FF + linear classifier, backprop baseline.

One command produces one results JSON (every number the notebook quotes); ``--only`` picks one experiment so
the long runs can go side by side, each into its own JSON. The JSON is rewritten after every epoch with
``"partial": true`` and the epochs done, so an interrupted run still leaves its curves; rerunning the same
command resumes from the checkpoint of the last finished epoch (``--checkpoint-dir``, one file per experiment,
named by a hash of every setting that changes the result)::

    # the long CPU runs of hw2_mlp/results/ (the notebook reports what they reached); 60k training images
    DLHW_DATA=../shared/data nice -n 19 python -m hw2_mlp.ff_run --profile full --only supervised \
        --hidden 1000,1000,1000 --sup-epochs 60 --lr 1e-3 --theta 0.5 --label-value 3 --peer-norm 0.03 \
        --merge-val 1 --test-every 5 --probe-epochs 20 --threads 1 --no-progress --checkpoint-dir /work/runs/ff \
        --out hw2_mlp/results/ff_sup_3x1000.json
    DLHW_DATA=../shared/data nice -n 19 python -m hw2_mlp.ff_run --profile full --only unsupervised \
        --hidden 1000,1000,1000 --unsup-epochs 60 --lr 1e-3 --theta 0.5 --peer-norm 0.03 --merge-val 1 \
        --quick-probe-every 5 --probe-epochs 20 --threads 1 --no-progress --checkpoint-dir /work/runs/ff \
        --out hw2_mlp/results/ff_unsup_3x1000.json
    DLHW_DATA=../shared/data nice -n 19 python -m hw2_mlp.ff_run --profile full --only backprop \
        --hidden 1000,1000,1000 --baseline-epochs 20 --lr 1e-3 --merge-val 1 --threads 1 --no-progress \
        --checkpoint-dir /work/runs/ff --out hw2_mlp/results/ff_backprop_3x1000.json
    # (the same baseline with the FF recipe's weight decay: --baseline-weight-decay 3e-4,
    #  --out hw2_mlp/results/ff_backprop_3x1000_wd.json; tuned on validation: python -m hw2_mlp.ff_baseline)

    # the same net with loeweX's recipe (LOEWEX_RECIPE: SGD + momentum + weight decay, theta = D, label 1,
    # full-gradient ReLU, an SGD-trained one-pass classifier), 100 epochs like loeweX
    DLHW_DATA=../shared/data nice -n 19 python -m hw2_mlp.ff_run --profile full --only supervised \
        --hidden 1000,1000,1000 --sup-epochs 100 --optimizer sgd --lr 1e-3 --weight-decay 3e-4 --theta 1 \
        --label-value 1 --peer-norm 0.03 --full-grad 1 --probe-optimizer sgd --probe-lr 1e-2 \
        --probe-weight-decay 3e-3 --merge-val 1 --test-every 5 --probe-epochs 20 --threads 1 --no-progress \
        --checkpoint-dir /work/runs/ff --out hw2_mlp/results/ff_sup_loewex.json
    # (unsupervised: --only unsupervised --unsup-epochs 100 --quick-probe-every 5, no --label-value,
    #  --out hw2_mlp/results/ff_unsup_loewex.json)

    # one-at-a-time ablations (2 x 500, 10k images, 6 epochs, scored on validation), e.g. the paper's label height
    DLHW_DATA=../shared/data python -m hw2_mlp.ff_run --only supervised --hidden 500,500 --limit-train 10000 \
        --limit-test 10000 --sup-epochs 6 --lr 1e-3 --probe-epochs 10 --test-every 6 --threads 1 \
        --theta 0.5 --label-value 1 --peer-norm 0.03 --negatives random --out hw2_mlp/results/ff_ablation_label1.json
    # (the same with --label-value 3 --standardize 1: loeweX's standardised pixels, ff_ablation_standardize.json)

    # the paper's setting (4 x 2000, 60 epochs supervised, 100 unsupervised, Adam; hours on a CPU, minutes on a
    # GPU); the notebook's full profile instead uses the 3 x 1000 net with loeweX's recipe (loewex_recipe)
    DLHW_DATA=../shared/data python -m hw2_mlp.ff_run --profile full --out hw2_mlp/results/ff_full.json

``--profile quick`` (the default) trains a small net on a 5k/1k subset in about a minute. Bad flags or values,
a missing data folder or an unwritable ``--out`` give one line on stderr and exit code 2 before anything is
written; Ctrl-C gives one line and exit code 130, and the same command resumes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from common import (TensorBatches, TensorSplit, cache_dir, evaluate, fit, load_dataset, machine, seed_everything,
                    torch_threads)
from common.cli import (Parser, add_standard_args, check_choice, check_out_file, check_positive, check_writable,
                        command_line, exit_process, parse_widths, run_cli, standard_settings)
from common.errors import UsageError
from common.io import write_json_atomic

from .ff_train import (FFTrainConfig, accuracy_of, checkpoint_file, ff_losses, fit_linear_probe, fixed_pair,
                       field_defaults, probe_features, train_ff, without_added_defaults)
from .forward_forward import (LABEL_VALUE, OPTIMIZERS, THETA_PER_UNIT, FFNet, SupervisedFF, backprop_mlp,
                              make_optimizer)

PROG = "python -m hw2_mlp.ff_run"
# Hinton (2022), sections 3.2-3.3: test error of a 4 x 2000 ReLU net on the permutation-invariant task.
PAPER = {"architecture": "784-2000-2000-2000-2000 ReLU", "supervised_epochs": 60, "unsupervised_epochs": 100,
         "supervised_test_error": 0.0136, "unsupervised_test_error": 0.0137,
         "backprop_epochs_to_similar_error": 20}
# loeweX/Forward-Forward (the most faithful public re-implementation): 3 x 1000, 100 epochs, 50k images
LOEWEX = {"architecture": "784-1000-1000-1000 ReLU, peer normalisation 0.03", "epochs": 100,
          "supervised_test_error": 0.0145}
TARGETS = {"supervised_test_error": 0.014, "unsupervised_test_error": 0.016}  # issue #19
EXPERIMENTS = ("supervised", "unsupervised", "backprop")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class FFRunConfig:
    """What one run trains. ``limit_*=None`` means the whole split; ``merge_val`` trains on all 60k images
    (otherwise 54k, and the 6k validation images score every epoch)."""

    limit_train: int | None = 5000
    limit_test: int | None = 1000
    merge_val: bool = False
    hidden: tuple[int, ...] = (256, 256)
    sup_epochs: int = 5
    unsup_epochs: int = 5
    batch_size: int = 100
    lr: float = 3e-3
    theta_per_unit: float = THETA_PER_UNIT
    label_value: float = LABEL_VALUE
    peer_norm: float = 0.0
    negatives: str = "random"
    probe_epochs: int = 8
    probe_lr: float = 1e-3
    baseline_epochs: int = 5
    test_every: int = 1        # supervised: test accuracy every this many epochs
    quick_probe_every: int = 0  # unsupervised: a linear probe on 10k images every this many epochs (0 = off)
    seed: int = 0
    # loeweX's recipe: --optimizer sgd --weight-decay 3e-4 --full-grad 1 (see LOEWEX_RECIPE)
    optimizer: str = "adam"
    weight_decay: float = 0.0
    full_grad: bool = False
    probe_optimizer: str = "adam"
    probe_weight_decay: float = 0.0
    baseline_weight_decay: float = 0.0  # the backprop baseline's (Adam, coupled L2 like the FF recipe's SGD)
    baseline_schedule: str = "constant"  # or "cosine": the baseline's lr annealed to 0 over its epochs
    standardize: bool = False  # pixels as (x - mean) / std of the training pixels (loeweX's input), not [0, 1]


# Fields added after the long runs' checkpoints were written: left out of a checkpoint's key while they keep
# these defaults (so those checkpoints still resume); any other value is keyed like every other setting.
ADDED_RUN_SETTINGS = field_defaults(FFRunConfig, "optimizer", "weight_decay", "full_grad", "probe_optimizer",
                                    "probe_weight_decay", "baseline_weight_decay", "baseline_schedule",
                                    "standardize")
# loeweX/Forward-Forward's config.yaml and model (its linear classifier is trained alongside the net with SGD
# lr 1e-2 / weight decay 3e-3; here it is trained afterwards with the same rule), and the same as flags
LOEWEX_SETTINGS = {"hidden": (1000, 1000, 1000), "sup_epochs": 100, "unsup_epochs": 100, "optimizer": "sgd",
                   "lr": 1e-3, "weight_decay": 3e-4, "theta_per_unit": 1.0, "label_value": 1.0, "peer_norm": 0.03,
                   "full_grad": True, "probe_optimizer": "sgd", "probe_lr": 1e-2, "probe_weight_decay": 3e-3}
LOEWEX_RECIPE = ("--hidden 1000,1000,1000 --sup-epochs 100 --unsup-epochs 100 --optimizer sgd --lr 1e-3 "
                 "--weight-decay 3e-4 --theta 1 --label-value 1 --peer-norm 0.03 --full-grad 1 --probe-optimizer sgd "
                 "--probe-lr 1e-2 --probe-weight-decay 3e-3")


def loewex_recipe(config: FFRunConfig) -> FFRunConfig:
    """``config`` with loeweX's net, epochs and recipe: the best measured setting (results/ff_sup_loewex.json)
    and the notebook's full profile. The CLI's ``full`` profile keeps its defaults, so the commands stored in
    the committed results files still mean what they meant."""
    return replace(config, **LOEWEX_SETTINGS)


PROFILES = {
    "quick": FFRunConfig(),
    # the paper's net and epochs; lr 1e-3 on the full set (3e-3, tuned on 5k images, oscillated there)
    "full": FFRunConfig(limit_train=None, limit_test=None, hidden=(2000,) * 4, sup_epochs=60,
                        unsup_epochs=100, probe_epochs=20, baseline_epochs=20, lr=1e-3, test_every=5,
                        quick_probe_every=5),
}
QUICK_PROBE_IMAGES = 10_000


def load_mnist(config: FFRunConfig, root: Path | None = None) -> tuple[TensorSplit, TensorSplit, TensorSplit]:
    """(train, val, test) MNIST from ``root`` (default ``$DLHW_DATA``); with ``merge_val`` the validation
    images are in train and ``val`` is empty. With ``standardize`` every split is shifted and scaled by the
    mean and standard deviation of the training pixels (the label pixels are written over them later)."""
    splits = load_dataset("mnist", root=root, limit_train=config.limit_train, limit_test=config.limit_test,
                          seed=config.seed)
    train, val = splits.train, splits.val
    if config.merge_val:
        train = TensorSplit(torch.cat([train.X, val.X]), torch.cat([train.y, val.y]), train.classes, train.name)
        val = val.head(0)
    test = splits.test
    if config.standardize:
        mean, std = train.X.mean(), train.X.std()
        train, val, test = (TensorSplit((split.X - mean) / std, split.y, split.classes, split.name)
                            for split in (train, val, test))
    return train, val, test


def _train_config(config: FFRunConfig, num_epochs: int) -> FFTrainConfig:
    return FFTrainConfig(num_epochs=num_epochs, batch_size=config.batch_size, lr=config.lr,
                         weight_decay=config.weight_decay, optimizer=config.optimizer,
                         negatives=config.negatives, test_every=config.test_every, seed=config.seed)


def _keyed_config(config: FFRunConfig) -> dict:
    """The config as it enters a checkpoint's key (:data:`ADDED_RUN_SETTINGS` at their defaults left out)."""
    return without_added_defaults(asdict(config), ADDED_RUN_SETTINGS)


def _slim(records: list[dict]) -> list[dict]:
    """History records without the per-image goodness values (kept in memory for histograms only)."""
    return [{k: v for k, v in r.items() if k != "probe_goodness"} for r in records]


def _data_settings(config: FFRunConfig, train: TensorSplit) -> dict:
    return {"limit_train": config.limit_train, "limit_test": config.limit_test, "merge_val": config.merge_val,
            "train_images": len(train), "seed": config.seed}


def _training_summary(history, train_images: int, path: Path | None) -> dict:
    """Epochs, training and evaluation seconds, training images per second, and the checkpoint of one FF run."""
    train_seconds = sum(r["seconds"] for r in history.records)
    return {"epochs": len(history), "train_seconds": train_seconds,
            "eval_seconds": sum(r.get("eval_seconds", 0.0) for r in history.records),
            "examples_per_s": train_images * len(history) / max(train_seconds, 1e-9),
            "checkpoint": str(path) if path else None}


def run_supervised(train: TensorSplit, test: TensorSplit, config: FFRunConfig, device,
                   checkpoint_dir: Path | None, log=print, val: TensorSplit | None = None,
                   on_epoch=None) -> tuple[SupervisedFF, list[dict], dict]:
    """Supervised FF, then both prediction rules. Returns (net, history records, results)."""
    seed_everything(config.seed)
    net = SupervisedFF((train.X[0].numel(),) + config.hidden, config.theta_per_unit,
                       label_value=config.label_value, peer_norm=config.peer_norm,
                       full_grad=config.full_grad).to(device)
    tic = time.perf_counter()
    train_config = _train_config(config, config.sup_epochs)
    settings = _data_settings(config, train)
    path = checkpoint_file(checkpoint_dir, "supervised", {**settings, "config": _keyed_config(config)}) \
        if checkpoint_dir else None
    history = train_ff(net, train, train_config, mode="supervised", val=val, test=test, checkpoint_path=path,
                       settings=settings, log=log, after_epoch=on_epoch)
    results = _training_summary(history, len(train), path)
    scored = {"train": train.head(min(len(train), 10_000), config.seed), "test": test}
    if val is not None and len(val):
        scored["val"] = val
    for name, split in scored.items():
        pos, neg = fixed_pair(net, "supervised", split, train_config, seed=config.seed + 10)
        results[f"{name}_ff_loss"] = ff_losses(net, pos, neg)
        results[f"{name}_error"] = 1.0 - accuracy_of(net, split)
    results["train_error_images"] = len(scored["train"])
    # the cheap variant: one pass with a neutral label, linear softmax on the normalized activities
    probe_history, metrics = _linear_probe(net, train, test, config, device, neutral=True, val=val)
    for name in metrics:
        results[f"{name}_error_one_pass"] = 1.0 - metrics[name]["acc"]
        results[f"{name}_loss_one_pass"] = metrics[name]["loss"]
    results["wall_seconds"] = time.perf_counter() - tic
    results["one_pass_history"] = probe_history
    return net, history.records, results


def _linear_probe(net: FFNet, train: TensorSplit, test: TensorSplit, config: FFRunConfig, device,
                  neutral: bool, val: TensorSplit | None = None, epochs: int | None = None) -> tuple[dict, dict]:
    """A linear softmax classifier on the frozen net's normalized activities (neutral label embedded when
    ``neutral``): its training history and train/(val/)test metrics. The first eval set (val when given)
    is the per-epoch validation."""
    sets = ([("val", val)] if val is not None and len(val) else []) + [("test", test)]
    feats = {name: probe_features(net, split.to(device), neutral=neutral) for name, split in sets}
    train_feats = probe_features(net, train.to(device), neutral=neutral)
    _, history, metrics = fit_linear_probe(train_feats, train.y.to(device),
                                           {name: (feats[name], split.y.to(device)) for name, split in sets},
                                           num_epochs=epochs or config.probe_epochs, lr=config.probe_lr,
                                           weight_decay=config.probe_weight_decay,
                                           optimizer=config.probe_optimizer, seed=config.seed)
    return history, metrics


def run_unsupervised(train: TensorSplit, test: TensorSplit, config: FFRunConfig, device,
                     checkpoint_dir: Path | None, log=print, val: TensorSplit | None = None,
                     on_epoch=None) -> tuple[FFNet, list[dict], dict]:
    """Unsupervised FF (real vs hybrid images), then a linear classifier on the frozen net's activities."""
    seed_everything(config.seed)
    net = FFNet((train.X[0].numel(),) + config.hidden, config.theta_per_unit, config.peer_norm,
                config.full_grad).to(device)
    tic = time.perf_counter()
    train_config = _train_config(config, config.unsup_epochs)
    settings = _data_settings(config, train)
    path = checkpoint_file(checkpoint_dir, "unsupervised", {**settings, "config": _keyed_config(config)}) \
        if checkpoint_dir else None
    quick_train = train.head(min(len(train), QUICK_PROBE_IMAGES), config.seed)

    def epoch_probe(net, record, history):
        every = config.quick_probe_every
        if every and (record["epoch"] % every == 0 or record["epoch"] == config.unsup_epochs):
            _, metrics = _linear_probe(net, quick_train, test, config, device, neutral=False, val=val,
                                       epochs=10)
            for name, m in metrics.items():
                record[f"quick_probe_{name}_acc"] = m["acc"]

    history = train_ff(net, train, train_config, mode="unsupervised", checkpoint_path=path, settings=settings,
                       log=log, on_epoch=epoch_probe, after_epoch=on_epoch)
    net.eval()  # inference mode from here on: only the linear classifier learns
    results = _training_summary(history, len(train), path)
    for name, split in {"train": train.head(min(len(train), 10_000), config.seed), "test": test}.items():
        pos, neg = fixed_pair(net, "unsupervised", split, train_config, seed=config.seed + 10)
        results[f"{name}_ff_loss"] = ff_losses(net, pos, neg)
    probe_history, metrics = _linear_probe(net, train, test, config, device, neutral=False, val=val)
    for name in metrics:
        results[f"{name}_error"] = 1.0 - metrics[name]["acc"]
        results[f"{name}_loss"] = metrics[name]["loss"]
    results["wall_seconds"] = time.perf_counter() - tic
    results["probe_history"] = probe_history
    return net, history.records, results


def run_backprop(train: TensorSplit, test: TensorSplit, config: FFRunConfig, device,
                 val: TensorSplit | None = None, checkpoint_dir: Path | None = None,
                 on_epoch=None) -> tuple[list[dict], dict]:
    """The same architecture with a softmax head, trained end to end by backprop (Adam, cross-entropy, weight
    decay ``config.baseline_weight_decay``, learning rate constant or cosine-annealed to zero by the last epoch
    as ``config.baseline_schedule`` says); validation (test when there is none) scores every epoch.
    Checkpointed every epoch in ``checkpoint_dir`` (resumed by :func:`common.fit`); ``on_epoch(record)`` after
    every epoch."""
    seed_everything(config.seed)
    model = backprop_mlp((train.X[0].numel(),) + config.hidden).to(device)
    optimizer = make_optimizer(model.parameters(), "adam", config.lr, weight_decay=config.baseline_weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.baseline_epochs) \
        if config.baseline_schedule == "cosine" and config.baseline_epochs else None
    batches = TensorBatches(train.X, train.y, config.batch_size, device=device, seed=config.seed)
    monitor = val if val is not None and len(val) else test
    monitor_batches = TensorBatches(monitor.X, monitor.y, 4096, shuffle=False, device=device)
    path = checkpoint_file(checkpoint_dir, "backprop", {**_data_settings(config, train), "config": _keyed_config(config)}) \
        if checkpoint_dir else None
    tic = time.perf_counter()
    history = fit(model, optimizer, batches, num_epochs=config.baseline_epochs, val_batches=monitor_batches,
                  loss_fn=F.cross_entropy, scheduler=scheduler, progress=False, desc="backprop",
                  checkpoint_path=path, callbacks=[on_epoch] if on_epoch is not None else ())
    seconds = sum(r.get("seconds", 0.0) for r in history.records) or time.perf_counter() - tic
    results = {"epochs": config.baseline_epochs, "wall_seconds": seconds,
               "examples_per_s": len(train) * config.baseline_epochs / max(seconds, 1e-9),
               "per_epoch_validation": "val" if monitor is val else "test",
               "checkpoint": str(path) if path else None}
    for name, split in {"train": train, "val": val, "test": test}.items():
        if split is None or not len(split):
            continue
        metrics = evaluate(model, TensorBatches(split.X, split.y, 4096, shuffle=False, device=device))
        results[f"{name}_error"], results[f"{name}_loss"] = 1.0 - metrics["acc"], metrics["loss"]
    return history.records, results


def follow_epochs(into: dict, planned: int, save):
    """An ``on_epoch`` callback for :func:`run_backprop` that keeps ``into`` as the partial results section
    (epochs done and planned, the history so far) and calls ``save()`` after every epoch."""
    seen = []

    def on_epoch(record):
        seen.append(dict(record))
        into.update({"partial": True, "epochs_done": record["epoch"], "epochs_planned": planned,
                     "history": list(seen)})
        save()
    return on_epoch


def _targets_met(out: dict) -> dict:
    met = {}
    for name in ("supervised", "unsupervised"):
        if name in out and out[name].get("test_error") is not None:
            met[name] = out[name]["test_error"] <= TARGETS[f"{name}_test_error"]
            if name == "supervised" and out[name].get("test_error_one_pass") is not None:
                met["supervised_one_pass"] = out[name]["test_error_one_pass"] <= TARGETS["supervised_test_error"]
    return met


def _partial_section(config: FFRunConfig, name: str, history) -> dict:
    epochs = config.sup_epochs if name == "supervised" else config.unsup_epochs
    records = _slim(history.records)
    section = {"partial": True, "epochs_done": len(records), "epochs_planned": epochs, "history": records,
               "train_seconds": sum(r["seconds"] for r in records)}
    tested = [r for r in records if "test_acc" in r or "quick_probe_test_acc" in r]
    if tested:
        last = tested[-1]
        key = "test_acc" if "test_acc" in last else "quick_probe_test_acc"
        section["latest_test_error"] = {"epoch": last["epoch"], "error": 1.0 - last[key],
                                        "rule": "accumulated goodness" if key == "test_acc" else
                                        f"linear classifier on {QUICK_PROBE_IMAGES} training images, 10 epochs"}
    return section


def run(config: FFRunConfig, profile: str, checkpoint_dir: Path | None = None, command: str = "",
        log=print, *, only: tuple[str, ...] = EXPERIMENTS, device=None, data_root: Path | None = None,
        out: Path | None = None) -> dict:
    """The experiments ``only`` of one profile; returns the JSON-ready results (also written to ``out``
    after every epoch, marked partial, and at the end)."""
    device = device or torch.device("cpu")
    where = machine(device)
    tic = time.perf_counter()
    train, val, test = load_mnist(config, data_root)
    result = {
        "command": command, "profile": profile, "experiments": list(only), "config": asdict(config),
        "data": {"dataset": "MNIST (official files, $DLHW_DATA/MNIST/raw)", "train_images": len(train),
                 "val_images": len(val), "test_images": len(test),
                 "val": "stratified 10 % of the official training set, seed 0; used for choices, not trained on"
                        if len(val) else "merged into train"},
        "hardware": where, "paper": PAPER, "loewex": LOEWEX, "targets": TARGETS, "partial": True,
    }

    def save():
        result["wall_seconds"] = time.perf_counter() - tic
        result["targets_met"] = _targets_met(result)
        if out is not None:
            write_json_atomic(out, result)

    def progress_hook(name):
        def hook(net, record, history):
            result[name] = _partial_section(config, name, history)
            save()
        return hook

    if "supervised" in only:
        _, history, sup = run_supervised(train, test, config, device, checkpoint_dir, log, val=val,
                                         on_epoch=progress_hook("supervised"))
        result["supervised"] = {**sup, "partial": False, "history": _slim(history)}
        save()
    if "unsupervised" in only:
        _, history, unsup = run_unsupervised(train, test, config, device, checkpoint_dir, log, val=val,
                                             on_epoch=progress_hook("unsupervised"))
        result["unsupervised"] = {**unsup, "partial": False, "history": _slim(history)}
        save()
    if "backprop" in only and config.baseline_epochs:
        result["backprop"] = {}
        history, bp = run_backprop(train, test, config, device, val=val, checkpoint_dir=checkpoint_dir,
                                   on_epoch=follow_epochs(result["backprop"], config.baseline_epochs, save))
        result["backprop"] = {**bp, "partial": False, "history": history}
    result["partial"] = False
    save()
    return result


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_standard_args(parser)
    parser.add_argument("--only", default="all",
                        help=f"comma-separated experiments among {', '.join(EXPERIMENTS)} (default all)")
    parser.add_argument("--hidden", help="comma-separated layer widths, e.g. 1000,1000,1000")
    parser.add_argument("--sup-epochs", type=int)
    parser.add_argument("--unsup-epochs", type=int)
    parser.add_argument("--baseline-epochs", type=int, help="0 skips the backprop baseline")
    parser.add_argument("--baseline-weight-decay", type=float, help="the backprop baseline's weight decay (default 0)")
    parser.add_argument("--baseline-schedule",
                        help="the backprop baseline's learning rate: constant (default) or cosine (annealed to 0)")
    parser.add_argument("--probe-epochs", type=int, help="epochs of the linear classifiers")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--negatives", help="random or hard (the net's own favourite wrong labels)")
    parser.add_argument("--theta", type=float, dest="theta_per_unit", help="threshold per unit of width")
    parser.add_argument("--label-value", type=float, help="height of the one-hot label pixels")
    parser.add_argument("--peer-norm", type=float, help="weight of peer normalisation (0 = off)")
    parser.add_argument("--optimizer", help="adam (default) or sgd (momentum 0.9): the FF layers' update rule")
    parser.add_argument("--weight-decay", type=float, help="the FF layers' weight decay (default 0)")
    parser.add_argument("--full-grad", type=int, choices=(0, 1),
                        help="1: train through a ReLU whose gradient also passes below zero (loeweX)")
    parser.add_argument("--probe-lr", type=float, help="learning rate of the linear classifiers")
    parser.add_argument("--probe-optimizer", help="adam (default) or sgd: the linear classifiers' update rule")
    parser.add_argument("--probe-weight-decay", type=float, help="the linear classifiers' weight decay")
    parser.add_argument("--standardize", type=int, choices=(0, 1),
                        help="1: pixels standardised by the training pixels' mean and std (default 0: [0, 1])")
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--merge-val", type=int, choices=(0, 1), help="1: train on all 60k training images")
    parser.add_argument("--test-every", type=int)
    parser.add_argument("--quick-probe-every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="default: the dlhw cache folder (ff_checkpoints)")
    parser.add_argument("--out", type=Path, help="write the results JSON here (rewritten after every epoch)")
    return parser


def parse_args(argv: list[str] | None = None):
    return build_parser().parse_args(argv)


def _check_float(flag: str, value: float | None, minimum: float, strict: bool = True) -> None:
    if value is None:
        return
    if not value == value or (value <= minimum if strict else value < minimum):  # NaN fails too
        raise UsageError(f"{flag} must be {'>' if strict else '>='} {minimum}, got {value}.")


def config_from_args(args) -> tuple[str, FFRunConfig]:
    """The profile's config with the flags' overrides, validated (raises :class:`UsageError`)."""
    profile = standard_settings(args).profile.name if hasattr(args, "device") else (args.profile or "quick")
    config = PROFILES[profile]
    names = ("sup_epochs", "unsup_epochs", "baseline_epochs", "probe_epochs", "lr", "batch_size", "negatives",
             "theta_per_unit", "label_value", "peer_norm", "limit_train", "limit_test", "test_every",
             "quick_probe_every", "seed", "optimizer", "weight_decay", "probe_lr", "probe_optimizer",
             "probe_weight_decay", "baseline_weight_decay", "baseline_schedule")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    for flag in ("merge_val", "full_grad", "standardize"):
        if getattr(args, flag, None) is not None:
            overrides[flag] = bool(getattr(args, flag))
    if args.hidden:
        overrides["hidden"] = parse_widths("--hidden", args.hidden)
    config = replace(config, **overrides)
    for flag, value in (("--sup-epochs", config.sup_epochs), ("--unsup-epochs", config.unsup_epochs),
                        ("--probe-epochs", config.probe_epochs), ("--test-every", config.test_every)):
        check_positive(flag, value)
    check_positive("--baseline-epochs", config.baseline_epochs, minimum=0)
    check_positive("--quick-probe-every", config.quick_probe_every, minimum=0)
    check_positive("--batch-size", config.batch_size, minimum=2)  # hybrid images need two images a batch
    check_positive("--seed", config.seed, minimum=0)
    for flag, value in (("--limit-train", config.limit_train), ("--limit-test", config.limit_test)):
        if value is not None:
            check_positive(flag, value, minimum=config.batch_size if flag == "--limit-train" else 1)
    _check_float("--lr", config.lr, 0.0)
    _check_float("--theta", config.theta_per_unit, 0.0)
    _check_float("--label-value", config.label_value, 0.0)
    _check_float("--peer-norm", config.peer_norm, 0.0, strict=False)
    _check_float("--weight-decay", config.weight_decay, 0.0, strict=False)
    _check_float("--probe-lr", config.probe_lr, 0.0)
    _check_float("--probe-weight-decay", config.probe_weight_decay, 0.0, strict=False)
    _check_float("--baseline-weight-decay", config.baseline_weight_decay, 0.0, strict=False)
    check_choice("--negatives", config.negatives, ("random", "hard"))
    check_choice("--optimizer", config.optimizer, OPTIMIZERS)
    check_choice("--probe-optimizer", config.probe_optimizer, OPTIMIZERS)
    check_choice("--baseline-schedule", config.baseline_schedule, SCHEDULES)
    return profile, config


def _main(argv: list[str] | None) -> int:
    args = parse_args(argv)
    settings = standard_settings(args)
    profile, config = config_from_args(args)
    only = EXPERIMENTS if args.only == "all" else tuple(s.strip() for s in args.only.split(","))
    for name in only:
        check_choice("--only", name, EXPERIMENTS + ("all",))
    checkpoint_dir = args.checkpoint_dir or cache_dir("ff_checkpoints", create=False)  # made on first save
    check_writable(checkpoint_dir, "--checkpoint-dir")
    if args.out is not None:
        check_out_file(args.out, "ff.json")
    command = command_line(PROG, argv)
    with torch_threads(settings.threads):
        results = run(config, profile, checkpoint_dir, command, only=only, device=settings.device,
                      data_root=settings.data_root, out=args.out)
    if args.out:
        print(f"wrote {args.out}")
    summary = {k: results[k].get("test_error") for k in EXPERIMENTS if k in results}
    line = {"test_error": summary, "wall_seconds": round(results["wall_seconds"], 1)}
    if "supervised" in results:
        line["one_pass_test_error"] = results["supervised"]["test_error_one_pass"]
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
