"""Full-profile hw2cnn.P2 run: train the MobileNet-style net and/or the plain CNN on CIFAR-10 and report
test accuracy, parameters, FLOPs per image, images/s and wall time.

    python -m hw2_cnn.train_cifar --model both                 # CIFAR-10 from $DLHW_DATA (GPU if present)
    DLHW_DOWNLOAD=1 python -m hw2_cnn.train_cifar --model mobilenet
    python -m hw2_cnn.train_cifar --model both --dataset mnist --variant quick --epochs 3   # CPU data point

Target (issue 6): MobileNet >= 85% CIFAR-10 test accuracy with fewer FLOPs than the plain CNN at equal or
better accuracy. CIFAR-10 must be present (``$DLHW_DATA/cifar-10-batches-py``) or downloadable; nothing
else is substituted for it. ``--out results.json`` saves the table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from common import DataError, markdown_table

from .flops import cost_report
from .training import MODELS, TrainConfig, load_splits, train


def parse_args(argv: list[str] | None = None) -> tuple[list[TrainConfig], argparse.Namespace]:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS + ("both",), default="both")
    parser.add_argument("--dataset", default=defaults.dataset,
                        help="cifar10 (default), mnist, fashion_mnist, digits")
    parser.add_argument("--variant", choices=("full", "quick"), default=defaults.variant)
    parser.add_argument("--epochs", type=int, default=defaults.num_epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--expansion", type=int, default=None,
                        help="override t in every block after the first")
    parser.add_argument("--se-reduction", default="table", help="override r: an int, 'none', or 'table'")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="resume files, one per model")
    parser.add_argument("--out", type=Path, default=None, help="write the result rows as JSON here")
    args = parser.parse_args(argv)
    se = args.se_reduction.lower()
    if se == "table":
        reduction: int | None | str = "table"
    elif se == "none":
        reduction = None
    elif se.isdigit() and int(se) >= 1:
        reduction = int(se)
    else:
        parser.error(f"--se-reduction must be a positive int, 'none' or 'table', got {args.se_reduction!r}")
    models = MODELS if args.model == "both" else (args.model,)
    configs = []
    for model in models:
        checkpoint = str(args.checkpoint_dir / f"{model}_{args.dataset}.pt") if args.checkpoint_dir else None
        configs.append(TrainConfig(model=model, variant=args.variant, dataset=args.dataset,
                                   num_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                   weight_decay=args.weight_decay, expansion=args.expansion,
                                   se_reduction=reduction, limit_train=args.limit_train,
                                   limit_test=args.limit_test, seed=args.seed, device=args.device,
                                   checkpoint=checkpoint))
    return configs, args


def main(argv: list[str] | None = None) -> int:
    configs, args = parse_args(argv)
    try:
        splits = load_splits(configs[0])
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(splits.summary(), flush=True)
    rows = []
    for config in configs:
        result = train(config, splits)
        row = result.row()
        row["train_wall_min"] = result.seconds / 60
        cost = cost_report(result.extra["model"], result.input_shape, config.model, batch_size=128)
        row.update({k: v for k, v in cost.items() if k.startswith("images_per_s")})
        rows.append(row)
        print(markdown_table([row], floatfmt=".4g"), flush=True)
    print("\n" + markdown_table(rows, floatfmt=".4g"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "configs": [dataclasses.asdict(c) for c in configs],
                                        "data": splits.summary()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
