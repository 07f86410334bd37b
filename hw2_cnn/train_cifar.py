"""hw2cnn.P2: train the MobileNet-style net and/or the plain CNN on CIFAR-10 with one recipe and record test
accuracy, parameters, FLOPs per image, CPU images/s and training wall time, one results JSON per model.

    nice -n 19 python -m hw2_cnn.train_cifar --profile full --model mobilenet --epochs 3 --threads 1 \\
        --no-progress --checkpoint-dir /work/runs/hw2cnn --out hw2_cnn/results    # the committed CPU run
    (the same with --model plain; both at once on the 2-core machine)
    python -m hw2_cnn.train_cifar --model plain --dataset digits --epochs 1   # seconds, no data needed

The results file (``<out>/<dataset>_<model>.json``) is rewritten after every epoch with the curves so far
(``"status": "partial"``) and once more with the test accuracy (``"complete"``). A checkpoint is written after
every epoch under ``--checkpoint-dir``, named by every setting, so rerunning the same command resumes and a
command with any other setting starts fresh. Profiles: ``quick`` (default) trains the quick architectures on a
2,000-image subset for 2 epochs; ``full`` the ``cpu`` architectures on all 49,000 training images
(validation: a fixed, stratified 1,000 of the official training split). Explicit flags override both.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from common import (DATASETS, Parser, UsageError, add_standard_args, cache_dir, check_choice, check_positive,
                    check_writable, command_line, markdown_table, exit_process, run_cli, standard_settings, torch_threads, write_json_atomic)

from .architectures import VARIANTS
from .flops import throughput
from .training import MODELS, TrainConfig, TrainResult, load_splits, train

PROG = "python -m hw2_cnn.train_cifar"
PROFILE_DEFAULTS = {"quick": dict(variant="quick", num_epochs=2, limit_train=2000, limit_test=1000),
                    "full": dict(variant=TrainConfig.variant, num_epochs=TrainConfig.num_epochs, limit_train=None,
                                 limit_test=None)}
RESULTS_DIR = {"full": Path("hw2_cnn/results"), "quick": Path("build/hw2_cnn/results")}


def build_parser() -> Parser:
    defaults = TrainConfig()
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    add_standard_args(parser)
    parser.add_argument("--model", default="both", help=f"{', '.join(MODELS)} or both")
    parser.add_argument("--dataset", default=defaults.dataset, help=", ".join(DATASETS))
    parser.add_argument("--variant", default=None, help=f"{', '.join(VARIANTS)} (default: by profile)")
    parser.add_argument("--epochs", type=int, default=None, help="default: by profile")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak one-cycle learning rate")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    parser.add_argument("--expansion", type=int, default=None, help="override t in every block after the first")
    parser.add_argument("--se-reduction", default="table", help="override r: an int, 'none', or 'table'")
    parser.add_argument("--limit-train", type=int, default=None, help="default: by profile")
    parser.add_argument("--limit-test", type=int, default=None, help="default: by profile")
    parser.add_argument("--val-size", type=int, default=None,
                        help=f"validation images taken from the training split (default: {defaults.val_size} for "
                             f"cifar10, else a tenth)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="resume files, one per run (default: the dlhw cache)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for <dataset>_<model>.json (default: {RESULTS_DIR['full']} in the full "
                             f"profile, {RESULTS_DIR['quick']} in quick, so a quick run never overwrites the "
                             f"committed results)")
    return parser


def parse_se(text: str) -> int | None | str:
    value = text.strip().lower()
    if value in ("table", "none"):
        return None if value == "none" else "table"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise UsageError(f"--se-reduction must be a positive integer, 'none' or 'table', got {text!r}.")


def configs_from(args: argparse.Namespace, profile_name: str, checkpoint_dir: Path) -> list[TrainConfig]:
    """Validate every value and build one config per model; raise :class:`UsageError`."""
    check_choice("--model", args.model, MODELS + ("both",))
    check_choice("--dataset", args.dataset, DATASETS)
    preset = PROFILE_DEFAULTS[profile_name]
    variant = args.variant or preset["variant"]
    check_choice("--variant", variant, VARIANTS)
    epochs = preset["num_epochs"] if args.epochs is None else args.epochs
    check_positive("--epochs", epochs)
    check_positive("--batch-size", args.batch_size)
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}.")
    if args.weight_decay < 0 or not 0 <= args.label_smoothing < 1:
        raise UsageError(f"--weight-decay must be >= 0 and --label-smoothing in [0, 1), got "
                         f"{args.weight_decay} and {args.label_smoothing}.")
    for flag, value in (("--expansion", args.expansion), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test), ("--val-size", args.val_size)):
        if value is not None:
            check_positive(flag, value)
    se = parse_se(args.se_reduction)
    limit_train = preset["limit_train"] if args.limit_train is None else args.limit_train
    limit_test = preset["limit_test"] if args.limit_test is None else args.limit_test
    val_size = args.val_size if args.val_size is not None or args.dataset != "cifar10" else TrainConfig.val_size
    models = MODELS if args.model == "both" else (args.model,)
    return [TrainConfig(model=m, variant=variant, dataset=args.dataset, num_epochs=epochs,
                        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                        label_smoothing=args.label_smoothing, expansion=args.expansion, se_reduction=se,
                        limit_train=limit_train, limit_test=limit_test, val_size=val_size, seed=args.seed,
                        device=args.device, checkpoint_dir=str(checkpoint_dir),
                        channels_last=variant != "quick") for m in models]


def result_path(out: Path, config: TrainConfig) -> Path:
    return out / f"{config.dataset}_{config.model}.json"


def record(config: TrainConfig, history, static: dict, argv: list[str], threads: int | None,
           result: TrainResult | None = None, images_per_s: float | None = None) -> dict:
    """The results JSON of one run: settings, cost, per-epoch curves and, when complete, the test numbers."""
    records = list(history.records)
    train_images = int(static["data"].split("train ")[1].split(",")[0]) if "train " in static["data"] else None
    seconds = sum(r["seconds"] for r in records)
    out = {"status": "complete" if result is not None else "partial",
           "model": config.model, "dataset": config.dataset, "variant": config.variant,
           "settings": config.settings(), "threads": threads, "command": command_line(PROG, argv),
           "data": static["data"], "params": static["params"], "flops_per_image": static["flops"],
           "epochs_planned": config.num_epochs, "epochs_done": len(records), "curves": records,
           "train_seconds": seconds,
           "train_images_per_s": (train_images * len(records) / seconds) if seconds and train_images else None,
           "updated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if result is not None:
        out.update({"test_acc": result.test_acc, "test_loss": result.test_loss,
                    "inference_images_per_s_cpu": images_per_s})
    return out


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = standard_settings(args)
    checkpoint_dir = args.checkpoint_dir
    if checkpoint_dir is not None:
        check_writable(checkpoint_dir, "--checkpoint-dir")
    if args.out is None:
        args.out = RESULTS_DIR[settings.profile.name]
    check_writable(args.out, "--out")
    configs = configs_from(args, settings.profile.name, checkpoint_dir or Path("unset"))
    with torch_threads(settings.threads):
        splits = load_splits(configs[0], settings.data_root)   # DataNotFoundError / CorruptDataError: exit 2
        if checkpoint_dir is None:
            checkpoint_dir = cache_dir("checkpoints", "hw2_cnn")
        print(splits.summary(), flush=True)
        rows = []
        for config in configs:
            config = TrainConfig(**{**config.__dict__, "checkpoint_dir": str(checkpoint_dir),
                                    "progress": settings.progress})
            path = result_path(args.out, config)

            def on_epoch(history, static, config=config, path=path):
                write_json_atomic(path, record(config, history, static, argv, settings.threads))
                last = history.records[-1]
                print(f"{config.model} epoch {last['epoch']}/{config.num_epochs}: train acc "
                      f"{last['train_acc']:.4f}, val acc {last['val_acc']:.4f}, {last['seconds']:.0f} s",
                      flush=True)

            result = train(config, splits, on_epoch=on_epoch)
            model = result.extra["model"]
            images_per_s = throughput(model, result.input_shape, batch_size=128, device="cpu", min_seconds=2.0)
            static = {"params": result.params, "flops": result.flops, "data": result.dataset_summary}
            write_json_atomic(path, record(config, result.history, static, argv, settings.threads, result,
                                           images_per_s))
            rows.append({**result.row(), "images_per_s_cpu": images_per_s, "results": str(path)})
            print(markdown_table([rows[-1]], floatfmt=".4g"), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
