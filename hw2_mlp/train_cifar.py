"""hw2mlp.P1 on CIFAR-10 with one command: the two-layer net, overfitting 50 images, the update rules,
dropout, and the search for the best FullyConnectedNet, written to one results JSON::

    python -m hw2_mlp.train_cifar --profile full --data-root ../shared/data --threads 1 \\
        --checkpoint-dir /work/runs/fc --out hw2_mlp/results/fc_cifar10_full.json
    python -m hw2_mlp.train_cifar --profile quick --data-root ../shared/data --out /tmp/fc_quick.json

The course split (49,000 train / 1,000 validation from the training batches, the official 10,000 test), the
training mean image subtracted, images flattened (:func:`hw2_mlp.fc_experiments.load_cifar`). Every run
checkpoints each epoch under ``--checkpoint-dir`` with file names keyed by all of its settings, and the
cheap experiments cache their records there too: rerunning the same command resumes (Ctrl-C is exit 130),
and a larger ``--epochs`` continues the finalists from where a shorter run stopped.
The test split is scored once, for the model chosen on validation. Beside the JSON, ``<out>_w1.png`` shows
the two-layer net's first-layer weights as images.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path

import torch

from common import cache_dir, cpu_name, torch_threads
from common.cli import (Parser, add_standard_args, check_choice, check_positive, check_writable, command_line,
                        exit_process, run_cli, standard_settings)
from common.errors import DataNotFoundError, UsageError
from common.io import read_json, settings_key, write_json_atomic

from . import fc_experiments as fx
from .optim import UPDATE_RULES

PROG = "python -m hw2_mlp.train_cifar"
RESULTS = Path(__file__).resolve().parent / "results"
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
# plan fields each cached experiment depends on (besides the data fields), for its cache key
STAGE_FIELDS = {"overfit": "overfit_", "optimizers": "optim_", "dropout": "dropout_"}
DATA_FIELDS = ("n_train", "n_val", "n_test", "seed")
# command-line flags that override a plan field: flag -> (field, type, minimum)
OVERRIDES = {
    "--epochs": ("final_epochs", int, 1), "--search-epochs": ("search_epochs", int, 1),
    "--candidates": ("search_candidates", int, 1), "--finalists": ("finalists", int, 1),
    "--search-train": ("search_n", int, 1), "--batch-size": ("batch_size", int, 1),
    "--two-layer-epochs": ("two_layer_epochs", int, 1), "--limit-train": ("n_train", int, 1),
    "--seed": ("seed", int, 0),
}


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_standard_args(parser)
    parser.add_argument("--out", default=None,
                        help="results JSON (default hw2_mlp/results/fc_cifar10_<profile>.json)")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="per-epoch checkpoints and cached records (default <cache>/hw2_mlp/fc)")
    parser.add_argument("--stages", default=",".join(fx.STAGES),
                        help=f"comma-separated subset of {','.join(fx.STAGES)}")
    parser.add_argument("--update-rule", default=None, help=f"rule of the search: {', '.join(UPDATE_RULES)} "
                                                             f"(default adam)")
    for flag, (field, kind, _) in OVERRIDES.items():
        parser.add_argument(flag, type=kind, default=None, help=f"overrides the profile's {field}")
    parser.add_argument("--only-finalist", type=int, default=None,
                        help="train only the k-th finalist's checkpoint (1-based) and write no record, so "
                             "finalists can train in parallel processes; rerun without it to assemble")
    return parser


def check_cifar(root: Path | None) -> None:
    """Raise DataNotFoundError (one line, names the fix) unless all CIFAR-10 batches are under ``root``."""
    folder = root / "cifar-10-batches-py" if root is not None else None
    missing = [n for n in CIFAR_FILES if folder is None or not (folder / n).is_file()]
    if missing:
        where = f"{folder}" if folder is not None else "nowhere ($DLHW_DATA is unset and no --data-root)"
        raise DataNotFoundError(f"CIFAR-10 is missing ({', '.join(missing)} not found in {where}); point "
                                f"--data-root or $DLHW_DATA at the folder holding cifar-10-batches-py/.")


def parse(argv):
    """Validate every flag before any work; return (settings, plan, stages, out, checkpoint_dir,
    only_finalist)."""
    args = build_parser().parse_args(argv)
    settings = standard_settings(args)
    plan = fx.PLANS[settings.profile.name]
    changes = {}
    for flag, (field, _, minimum) in OVERRIDES.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            check_positive(flag, value, minimum)
            changes[field] = value
    if args.update_rule is not None:
        check_choice("--update-rule", args.update_rule, UPDATE_RULES)
        changes["update_rule"] = args.update_rule
    plan = dataclasses.replace(plan, **changes)
    if plan.finalists > 2 * plan.search_candidates:
        raise UsageError(f"--finalists {plan.finalists} exceeds the {2 * plan.search_candidates} search runs "
                         f"(each candidate runs with and without dropout); lower it or raise --candidates.")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    if not stages:
        raise UsageError(f"--stages is empty; give some of {','.join(fx.STAGES)}.")
    for stage in stages:
        check_choice("--stages", stage, fx.STAGES)
    if args.only_finalist is not None:
        check_positive("--only-finalist", args.only_finalist)
        if args.only_finalist > plan.finalists:
            raise UsageError(f"--only-finalist {args.only_finalist} exceeds --finalists {plan.finalists}.")
        if "search" not in stages:
            raise UsageError("--only-finalist needs the search stage in --stages.")
        stages = ("search",)
    check_cifar(settings.data_root)
    out = check_writable(args.out or RESULTS / f"fc_cifar10_{settings.profile.name}.json", "--out")
    ckpt = check_writable(args.checkpoint_dir or cache_dir("hw2_mlp", "fc"), "--checkpoint-dir")
    return settings, plan, stages, out, ckpt, args.only_finalist


def _cached(stage: str, plan: fx.Plan, ckpt: Path, compute) -> dict:
    """The record of a cheap experiment, read from ``ckpt`` when this exact setting was run before."""
    fields = {k: v for k, v in fx.plan_dict(plan).items() if k in DATA_FIELDS or k.startswith(STAGE_FIELDS[stage])}
    path = ckpt / f"{stage}_{settings_key({'stage': stage, **fields})}.json"
    if path.exists():
        return read_json(path, f"cached {stage} record")
    record = compute()
    write_json_atomic(path, record)
    return record


def save_weight_images(W1: torch.Tensor, path: Path) -> Path:
    """First-layer weights (3072, H) as H small RGB images (:func:`hw2_mlp.fc_report.weight_grid`)."""
    import matplotlib.pyplot as plt

    from common.plots import save_figure

    from .fc_report import weight_grid

    grid = weight_grid(W1)
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 60, grid.shape[0] / 60 + 0.4))
    ax.imshow(grid)
    ax.axis("off")
    ax.set_title(f"TwoLayerNet: the {W1.shape[1]} first-layer weight vectors as 32x32 RGB images")
    save_figure(fig, path, dpi=60)  # about the grid's own resolution: a smaller file, nothing lost
    plt.close(fig)
    return path


def run(settings, plan: fx.Plan, stages, out: Path, ckpt: Path, log=print, command: str | None = None) -> dict:
    tic = time.perf_counter()
    data = fx.load_cifar(settings.data_root, plan, settings.device)
    log(data["summary"])
    previous = read_json(out, "results file") if out.exists() else {}
    if previous.get("plan") != fx.plan_dict(plan):
        previous = {}  # a record of other settings is never merged into this one
    results = dict(previous.get("results", {}))
    for stage in stages:
        t = time.perf_counter()
        if stage == "two_layer":
            record, W1 = fx.two_layer(data, plan, ckpt, settings.progress)
            record["weights_image"] = save_weight_images(W1, out.with_name(out.stem + "_w1.png")).name
        elif stage == "overfit":
            record = _cached(stage, plan, ckpt, lambda: fx.overfit_grid(data, plan))
        elif stage == "optimizers":
            record = _cached(stage, plan, ckpt, lambda: fx.compare_optimizers(data, plan))
        elif stage == "dropout":
            record = _cached(stage, plan, ckpt, lambda: fx.compare_dropout(data, plan))
        else:
            record = fx.search(data, plan, ckpt, settings.progress, log)
        results[stage] = record
        log(f"{stage}: done in {time.perf_counter() - t:.0f} s (compute {record['seconds']:.0f} s)")
    # compute time of every recorded experiment (a resumed run reports the time it was measured in)
    compute_s = sum(r["seconds"] for r in results.values())
    record = {
        "task": "hw2mlp.P1", "profile": settings.profile.name, "plan": fx.plan_dict(plan),
        "data": data["summary"], "preprocessing": "training mean image subtracted; images flattened to 3072",
        "split": "validation: stratified 1,000 of the 50,000 training images (seeded), the rest for training; "
                 "the official 10,000 test images (subsets of each where the plan says so)",
        "results": results, "compute_seconds": round(compute_s, 1),
        "this_invocation_seconds": round(time.perf_counter() - tic, 1),
        "cpu": f"{cpu_name()} ({os.cpu_count()} logical CPUs)", "threads": torch.get_num_threads(),
        "device": str(settings.device),
        "torch": torch.__version__, "python": platform.python_version(),
        "command": command,
    }
    write_json_atomic(out, record)
    if "search" in results:
        best = results["search"]["best"]
        log(f"best FullyConnectedNet {best['hidden']}: validation {best['val_acc']:.4f}, "
            f"test {best['test_acc']:.4f}")
    log(f"wrote {out}")
    return record


def _main(argv) -> int:
    settings, plan, stages, out, ckpt, only_finalist = parse(argv)
    with torch_threads(settings.threads):
        if only_finalist is not None:
            data = fx.load_cifar(settings.data_root, plan, settings.device)
            fx.search(data, plan, ckpt, settings.progress, lambda m: print(m, flush=True), only_finalist)
            print(f"finalist {only_finalist} trained; rerun without --only-finalist to write the record")
            return 0
        run(settings, plan, stages, out, ckpt, log=lambda m: print(m, flush=True),
            command=command_line(PROG, argv))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
