"""DataLoader vs tensor-resident batches: one epoch of the same MLP on MNIST, side by side.

    python benchmarks/bench_batches.py [--repeats 3] [--batch-size 128]

(a) ``torch.utils.data.DataLoader`` over torchvision's ``MNIST`` dataset (PIL image → ``ToTensor`` per sample,
    the textbook pipeline), ``num_workers`` = 0 and 2;
(b) ``common.TensorBatches`` over the same 60,000 images held as one float32 tensor, and (c) held as uint8
    bytes (a quarter of the memory), scaled to [0, 1] per batch.
Same model, optimizer, batch size and number of samples; the median of ``--repeats`` epochs is reported, and
the ratio (a)/(b). Reads MNIST from $DLHW_DATA (copied to a temporary folder because torchvision extracts
the archives next to them); without it the benchmark stops (exit 2) and says so.
"""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (DataNotFoundError, Parser, TensorBatches, check_positive, load_dataset, run_cli,  # noqa: E402
                    seed_everything)
from common.cli import exit_process, resolve_data_root  # noqa: E402


def make_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def train_epoch(batches, model, optimizer) -> int:
    n = 0
    for xb, yb in batches:
        loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n += len(yb)
    return n


def timed(batches, repeats: int) -> tuple[float, int]:
    seed_everything(0)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    times, n = [], 0
    for _ in range(repeats):
        tic = time.perf_counter()
        n = train_epoch(batches, model, optimizer)
        times.append(time.perf_counter() - tic)
    return statistics.median(times), n


PROG = "python benchmarks/bench_batches.py"


def _main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-root", default=None, help="the datasets folder (default $DLHW_DATA)")
    args = parser.parse_args(argv)
    check_positive("--repeats", args.repeats)
    check_positive("--batch-size", args.batch_size)
    root = resolve_data_root(args.data_root)
    if root is None or not (root / "MNIST" / "raw").exists():
        raise DataNotFoundError(f"MNIST is not under {root or '$DLHW_DATA (unset)'}/MNIST/raw: this benchmark "
                                f"needs it; set DLHW_DATA or --data-root (e.g. ../shared/data).")
    import torchvision
    from torchvision import transforms

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(root / "MNIST", Path(tmp) / "MNIST")
        dataset = torchvision.datasets.MNIST(tmp, train=True, download=True, transform=transforms.ToTensor())
        rows = []
        for workers in (0, 2):
            loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                                 num_workers=workers, persistent_workers=workers > 0)
            seconds, n = timed(loader, args.repeats)
            rows.append((f"DataLoader(MNIST dataset, num_workers={workers})", seconds, n))
    splits = load_dataset("mnist", root=root, val_fraction=1e-4)  # the 6 val images are put back below
    X = torch.cat([splits.train.X, splits.val.X])
    y = torch.cat([splits.train.y, splits.val.y])
    seconds, n = timed(TensorBatches(X, y, args.batch_size, seed=0), args.repeats)
    rows.append(("common.TensorBatches (tensor-resident)", seconds, n))
    bytes_ = load_dataset("mnist", root=root, val_fraction=1e-4, uint8=True)
    X8 = torch.cat([bytes_.train.X, bytes_.val.X])
    seconds, n = timed(TensorBatches(X8, y, args.batch_size, seed=0), args.repeats)
    rows.append(("common.TensorBatches (uint8, scaled per batch)", seconds, n))
    baseline = rows[0][1]
    print(f"MNIST train, {rows[0][2]} images, MLP 784-256-10, batch {args.batch_size}, "
          f"median of {args.repeats} epochs, torch {torch.__version__}, {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'pipeline':<48} {'s/epoch':>8} {'images/s':>10} {'speed-up vs (a)':>16}")
    for name, secs, count in rows:
        print(f"{name:<48} {secs:8.2f} {count / secs:10.0f} {baseline / secs:15.1f}x")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
