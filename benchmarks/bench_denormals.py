"""Subnormal floats and CPU training speed: the same Adam steps with and without ``common.flush_denormals``.

    python benchmarks/bench_denormals.py [--hidden 1000,1000,1000] [--fraction 0.15] [--steps 20] \
        [--repeats 3] [--threads 2] [--out hw2_mlp/results/ff_denormals_bench.json]

The backprop baseline of the Forward-Forward task (a 784-1000-1000-1000 MLP, Adam with weight decay) slowed
sharply after its second epoch: its checkpoint held subnormal values in about 15 % of the weights and of
Adam's first moments (the weights of MNIST's blank border pixels and of dead units, decayed towards zero).
This benchmark rebuilds that state without training for hours: the same net and optimizer, one step to create
Adam's state, then ``--fraction`` of every weight and first-moment entry set to a subnormal value (1e-40 with a
random sign). Each row times ``--steps`` Adam steps from a saved state in a fresh process, because the mode
must be set before the first multithreaded op (worker threads copy it when they start):

- ``normal values``: the state without subnormals (the speed before the slowdown);
- ``subnormals``: the subnormal state, flushing off (as the run saw it);
- ``subnormals, flushed late``: flushing turned on only after the thread pool has started;
- ``subnormals, flushed``: ``flush_denormals()`` first, as :func:`common.cli.run_cli` does.

The rows alternate within each repeat so a shared machine's load hits them alike; the median images/s over
``--repeats`` is reported with each row's ratio to the first.
"""
from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (Parser, UsageError, check_positive, check_writable, command_line, exit_process,  # noqa: E402
                    flush_denormals, machine_text, parse_widths, run_cli)
from common.io import load_checkpoint, write_json_atomic  # noqa: E402
from hw2_mlp.forward_forward import backprop_mlp  # noqa: E402

SUBNORMAL = 1e-40  # float32's smallest normal number is about 1.18e-38


def make_state(sizes: tuple[int, ...], fraction: float, batch: int) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
    """(model state, optimizer state, X, y) after one Adam step, with ``fraction`` of every weight and first
    moment entry replaced by a subnormal (0 leaves them normal)."""
    torch.manual_seed(0)
    model = backprop_mlp(sizes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=3e-4)
    X, y = torch.rand(batch, sizes[0]), torch.randint(0, 10, (batch,))
    F.cross_entropy(model(X), y).backward()
    optimizer.step()
    if fraction:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                tensors = [p, optimizer.state[p]["exp_avg"]]
                for t in tensors:
                    mask = torch.rand(t.shape, generator=g) < fraction
                    sign = torch.where(torch.rand(t.shape, generator=g) < 0.5, -1.0, 1.0)
                    t[mask] = (SUBNORMAL * sign)[mask]
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), X, y


def subnormal_share(state: dict) -> float:
    tiny = torch.finfo(torch.float32).tiny
    values = [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
    return sum(((t != 0) & (t.abs() < tiny)).sum().item() for t in values) / sum(t.numel() for t in values)


def time_steps(sizes, state, steps: int) -> float:
    """Training images per second over ``steps`` Adam steps from ``state`` (after one warm-up step)."""
    model_state, optimizer_state, X, y = state
    model = backprop_mlp(sizes)
    model.load_state_dict(model_state)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=3e-4)
    optimizer.load_state_dict(optimizer_state)

    def step():
        optimizer.zero_grad()
        F.cross_entropy(model(X), y).backward()
        optimizer.step()

    tic = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(X) / (time.perf_counter() - tic)


CASES = {"normal values": ("clean", "off"), "subnormals": ("dirty", "off"),
         "subnormals, flushed late": ("dirty", "late"), "subnormals, flushed": ("dirty", "first")}


def child(args) -> None:
    """One timing in this fresh process: ``--case`` picks the state file and when flushing starts."""
    which, flush = CASES[args.case]
    flush_denormals(flush == "first")  # run_cli turned it on; "first" keeps it, the others undo it before any op
    torch.set_num_threads(args.threads)
    torch.ones(64, 64) @ torch.ones(64, 64)  # start the thread pool
    if flush == "late":
        flush_denormals()
    state = load_checkpoint(Path(args.state_dir) / f"{which}.pt")
    print(json.dumps({"images_per_s": time_steps(args.sizes, (state["model"], state["optimizer"], state["X"],
                                                                state["y"]), args.steps)}))


PROG = "python benchmarks/bench_denormals.py"


def _main(argv=None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="1000,1000,1000")
    parser.add_argument("--fraction", type=float, default=0.15, help="share of entries made subnormal")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the table as JSON here")
    parser.add_argument("--case", choices=tuple(CASES), help="internal: time one row in this process")
    parser.add_argument("--state-dir", help="internal: where the parent saved the states")
    args = parser.parse_args(argv)
    for flag in ("steps", "batch_size", "repeats", "threads"):
        check_positive(f"--{flag.replace('_', '-')}", getattr(args, flag))
    if not 0 < args.fraction <= 1:
        raise UsageError(f"--fraction must be in (0, 1], got {args.fraction}.")
    sizes = (784,) + parse_widths("--hidden", args.hidden)
    if args.out:
        check_writable(args.out)
    args.sizes = sizes
    if args.case:
        child(args)
        return 0
    flush_denormals(False)  # run_cli turned it on; the states need their subnormals made, not flushed
    clean = make_state(sizes, 0.0, args.batch_size)
    dirty = make_state(sizes, args.fraction, args.batch_size)
    share = subnormal_share({**dirty[0], **{f"m{k}": v["exp_avg"] for k, v in dirty[1]["state"].items()}})
    speeds: dict[str, list[float]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, optimizer, X, y) in (("clean", clean), ("dirty", dirty)):
            torch.save({"model": model, "optimizer": optimizer, "X": X, "y": y}, Path(tmp) / f"{name}.pt")
        base_argv = [sys.executable, __file__, "--hidden", args.hidden, "--steps", str(args.steps),
                     "--threads", str(args.threads), "--state-dir", tmp]
        for _ in range(args.repeats):
            for name in CASES:
                out = subprocess.run(base_argv + ["--case", name], capture_output=True, text=True, check=True)
                speeds[name].append(json.loads(out.stdout.splitlines()[-1])["images_per_s"])
    base = statistics.median(speeds["normal values"])
    rows = [{"what": name, "images_per_s": statistics.median(v), "ratio_to_normal": statistics.median(v) / base}
            for name, v in speeds.items()]
    setting = (f"backprop MLP {'-'.join(map(str, sizes))}, Adam + weight decay, batch {args.batch_size}, "
               f"{100 * share:.1f} % of weights and first moments subnormal, {args.threads} thread(s), median of "
               f"{args.repeats}, {machine_text()}")
    print(setting)
    print(f"{'what':<26} {'images/s':>10} {'ratio':>8}")
    for row in rows:
        print(f"{row['what']:<26} {row['images_per_s']:10.0f} {row['ratio_to_normal']:7.2f}x")
    if args.out:
        write_json_atomic(args.out, {"command": command_line(PROG, argv), "setting": setting, "rows": rows})
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
