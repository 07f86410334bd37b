"""hw5.P5 from the command line: ViT + LoRA on Food-101, trained, merged, timed, and a held-out photo predicted.

    python -m hw5_clip_peft.vit_lora.run                          # quick: tiny random ViT on the 100-photo sample
    python -m hw5_clip_peft.vit_lora.run --profile full           # ViT-Base/16-in21k on Food-101 (hub)
    python -m hw5_clip_peft.vit_lora.run --profile full --model ~/models/vit-base --data archive --out runs/x

``--model``: ``tiny`` (a random-weight ViT: pipeline checks only), a folder written by ``save_pretrained``
(model + image processor), or a hub id (read from the Hugging Face cache; downloaded only with
``DLHW_DOWNLOAD=1``). ``--data``: ``sample`` (``<data root>/food101_sample``), ``archive``
(``<data root>/food-101/images`` with ``meta/``), ``hub`` (``ethz/food101``, cache or ``DLHW_DOWNLOAD=1``) or
any ``<class>/<image>`` folder. Writes ``results.json``, ``report.md`` and the LoRA adapter (with the trained
head) to ``--out``; Trainer checkpoints go to ``<out>/checkpoints/lora-<settings key>/``, and rerunning the same
command after a kill resumes from the last one. Bad input is one line on stderr, exit code 2, nothing written.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

from common import (Parser, UsageError, add_standard_args, check_positive, check_writable, exit_process, run_cli,
                    standard_settings, torch_threads)

from .experiment import ADAPTER, REPORT, RESULTS, ExperimentConfig, LoraExperiment, check_sources, profile_defaults
from .training import check_checkpoint

PROG = "python -m hw5_clip_peft.vit_lora.run"
__all__ = ["ADAPTER", "REPORT", "RESULTS", "main"]


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_standard_args(parser)
    parser.add_argument("--out", default=None, help="output folder (default runs/vit-lora-<profile>)")
    parser.add_argument("--model", default=None,
                        help="tiny, a save_pretrained folder or a hub id (default: quick tiny, full "
                             "google/vit-base-patch16-224-in21k)")
    parser.add_argument("--data", default=None,
                        help="sample, archive, hub or a <class>/<image> folder (default: quick sample, full hub)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: quick 5, full 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: quick 16, full 128")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of LoRA and head (default 5e-3)")
    parser.add_argument("--rank", type=int, default=None, help="LoRA rank r (default 16; alpha stays 16)")
    parser.add_argument("--train-limit", type=int, default=None, help="training photos kept (default: all)")
    parser.add_argument("--val-limit", type=int, default=None, help="validation photos kept (default: all)")
    parser.add_argument("--hold-out", type=int, default=None,
                        help="training photos held out for the prediction step (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="default 0")
    parser.add_argument("--latency-repeats", type=int, default=None, help="timed passes per round")
    parser.add_argument("--compare", action=argparse.BooleanOptionalAction, default=None,
                        help="also train LoRA r=4/8/16, head-only and full fine-tuning at equal epochs "
                             "(default on; --no-compare to skip)")
    parser.add_argument("--compare-epochs", type=int, default=None, help="epochs per compared method (3)")
    parser.add_argument("--vit-base-check", action=argparse.BooleanOptionalAction, default=None,
                        help="merge check and latency at ViT-Base/16 shapes, random weights (default: on for "
                             "--model tiny, off otherwise)")
    return parser


def config_from_args(args, profile) -> ExperimentConfig:
    """The profile's defaults with every given flag applied, each value checked (UsageError)."""
    cfg = profile_defaults(profile)
    for flag in ("epochs", "batch_size", "rank", "latency_repeats", "compare_epochs", "hold_out",
                 "train_limit", "val_limit"):
        value = getattr(args, flag)
        if value is not None:
            check_positive(f"--{flag.replace('_', '-')}", value)
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive finite number, got {args.lr}; e.g. --lr 5e-3.")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}.")
    given = {"model": args.model, "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size,
             "lr": args.lr, "rank": args.rank, "train_limit": args.train_limit, "val_limit": args.val_limit,
             "hold_out": args.hold_out, "seed": args.seed, "latency_repeats": args.latency_repeats,
             "compare": args.compare, "compare_epochs": args.compare_epochs,
             "vit_base_check": args.vit_base_check}
    cfg = replace(cfg, **{k: v for k, v in given.items() if v is not None})
    if args.vit_base_check is None:  # a ViT-Base model measures itself; the tiny one says nothing about it
        cfg = replace(cfg, vit_base_check=cfg.tiny)
    if cfg.train_limit is not None and cfg.hold_out >= cfg.train_limit:
        raise UsageError(f"--hold-out {cfg.hold_out} leaves no training photo of --train-limit "
                         f"{cfg.train_limit}; hold out fewer or train on more.")
    if cfg.model.strip() == "":
        raise UsageError("--model is empty; pass tiny, a folder or a hub id.")
    return cfg


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    settings = standard_settings(args)
    cfg = config_from_args(args, settings.profile)
    out = Path(args.out or f"runs/vit-lora-{settings.profile.name}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder.")
    check_writable(out)
    source, model = check_sources(cfg, settings.data_root)  # missing data or weights: exit 2 before any work
    check_checkpoint(LoraExperiment.checkpoint_dir(out / "checkpoints", cfg))  # a corrupt one: exit 2 now
    print(f"profile {settings.profile.name}; device {settings.device}; model {model or cfg.model}; "
          f"data {source}; output {out}", flush=True)
    threads = settings.threads or (1 if cfg.tiny and settings.device.type == "cpu" else None)
    with torch_threads(threads):  # the tiny model's ops are too small to split across threads
        exp = LoraExperiment(cfg, profile=settings.profile, data_root=settings.data_root,
                             workdir=out / "checkpoints", device=settings.device,
                             log=lambda line: print(line, flush=True), progress=settings.progress)
        results = exp.run_all()
    exp.write(out)  # adapter (LoRA weights + the trained head), results.json, report.md
    t = results["training"]
    print(f"best validation accuracy {t['best_val_accuracy']:.4f} (epoch {t['best_epoch']}); merge check "
          f"{'passed' if results['merge']['passed'] else 'FAILED'}; wrote {out / RESULTS} and {out / REPORT}")
    return 0 if results["merge"]["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
