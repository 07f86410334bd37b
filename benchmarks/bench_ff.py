"""Forward-Forward training and prediction speed: the old code path and the current one, side by side.

    python benchmarks/bench_ff.py [--hidden 1000,1000,1000] [--steps 40] [--repeats 3] [--threads 1] \
        [--out hw2_mlp/results/ff_bench.json]

Old path (hw2_mlp before issue #19): every step embeds the label into a positive and a negative copy of
each image and runs both through the whole net (``make_pair`` + ``FFNet.train_step``), updates with the
for-each Adam, and converts the per-layer statistics to Python floats every step; prediction runs all ten labelled copies through every
layer. Current path (``ff_train.train_step``): the first layer's label-independent work is computed once per
image and shared by the positive and the negative copy, and by all ten candidate labels at prediction time
(:class:`hw2_mlp.forward_forward.SupervisedFF`, ``shared_first_layer``); Adam is fused (one kernel per
layer); statistics stay tensors. The same
net, batch (100), optimizer and data; old and new alternate within each repeat so a shared machine's load
hits both alike; the median of ``--repeats`` is reported with the ratio. Uses MNIST from $DLHW_DATA when set,
else uniform noise images (dense matmuls take the same time on any pixel values).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (Parser, check_positive, check_writable, command_line, exit_process, load_dataset,  # noqa: E402
                    machine_text, parse_widths, run_cli, torch_threads)
from common.errors import DataError  # noqa: E402
from common.io import write_json_atomic  # noqa: E402
from hw2_mlp.ff_train import FFTrainConfig, make_pair, train_step  # noqa: E402
from hw2_mlp.forward_forward import STAT_KEYS, SupervisedFF, layer_optimizers  # noqa: E402


def images(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        split = load_dataset("mnist", limit_train=n, seed=0).train
        return split.X, split.y, f"MNIST ({len(split)} training images)"
    except (DataError, ValueError):
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "noise images"


def old_step(net, X, y, config, generator, optimizers):
    X_pos, X_neg = make_pair(net, "supervised", X, y, config, generator)
    stats = net.train_step(X_pos, X_neg, optimizers)
    return torch.tensor([[float(s[k]) for k in ("loss", "g_pos", "g_neg", "ff_acc")] for s in stats])


def new_step(net, X, y, config, generator, optimizers):
    stats = train_step(net, "supervised", X, y, config, generator, optimizers)
    return torch.stack([torch.stack([s[k] for k in STAT_KEYS]) for s in stats])


def time_training(shared: bool, X, y, sizes, steps: int, batch: int, negatives: str) -> float:
    """Training examples (images) per second over ``steps`` steps."""
    torch.manual_seed(0)
    net = SupervisedFF(sizes, shared_first_layer=shared)
    optimizers = layer_optimizers(net, 1e-3, fused=shared)  # the old code's Adam was the for-each one
    config = FFTrainConfig(batch_size=batch, negatives=negatives)
    generator = torch.Generator().manual_seed(1)
    step = new_step if shared else old_step
    step(net, X[:batch], y[:batch], config, generator, optimizers)  # warm-up
    tic = time.perf_counter()
    for i in range(steps):
        j = (i * batch) % (len(X) - batch)
        step(net, X[j:j + batch], y[j:j + batch], config, generator, optimizers)
    return steps * batch / (time.perf_counter() - tic)


def time_prediction(shared: bool, X, sizes) -> float:
    """Images per second scored under all ten labels (accumulated goodness)."""
    torch.manual_seed(0)
    net = SupervisedFF(sizes, shared_first_layer=shared).eval()
    net.predict(X[:100])
    tic = time.perf_counter()
    net.predict(X, batch_size=1000)
    return len(X) / (time.perf_counter() - tic)


PROG = "python benchmarks/bench_ff.py"


def _main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="1000,1000,1000")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "repeats", "threads"):
        check_positive(f"--{flag.replace('_', '-')}", getattr(args, flag))
    sizes = (784,) + parse_widths("--hidden", args.hidden)
    if args.out:
        check_writable(args.out)
    X, y, source = images(max(args.steps * args.batch_size, 2000))
    rows = {}
    with torch_threads(args.threads):
        for _ in range(args.repeats):
            for name, fn in (("train step, random negatives", lambda s: time_training(
                                 s, X, y, sizes, args.steps, args.batch_size, "random")),
                             ("train step, hard negatives", lambda s: time_training(
                                 s, X, y, sizes, max(args.steps // 3, 5), args.batch_size, "hard")),
                             ("prediction, 10 labels", lambda s: time_prediction(s, X[:2000], sizes))):
                for shared in (False, True):
                    rows.setdefault((name, shared), []).append(fn(shared))
    setting = (f"FF {'-'.join(map(str, sizes))}, batch {args.batch_size}, {source}, {args.threads} thread(s), "
               f"median of {args.repeats}, {machine_text()}")
    table = [{"what": name, "old": statistics.median(rows[(name, False)]),
              "new": statistics.median(rows[(name, True)])} for name in dict.fromkeys(k[0] for k in rows)]
    print(setting)
    print(f"{'what':<32} {'old ex/s':>10} {'new ex/s':>10} {'new / old':>10}")
    for row in table:
        print(f"{row['what']:<32} {row['old']:10.0f} {row['new']:10.0f} {row['new'] / row['old']:9.2f}x")
    if args.out:
        write_json_atomic(args.out, {"command": command_line("python benchmarks/bench_ff.py", argv),
                                     "setting": setting, "rows": table,
                                     "units": "training images (one positive + one negative each) or images "
                                              "scored under all ten labels, per second"})
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
