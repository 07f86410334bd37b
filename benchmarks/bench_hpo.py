"""Benchmark of the main job (hw7.P5): its wall time, and how many epochs Optuna with pruning needs to match
grid search's best validation accuracy, as a fraction of the epochs grid search used (goal <= 0.35).

    python benchmarks/bench_hpo.py                          # both figures, digits and MNIST, seeds 0 1 2
    python benchmarks/bench_hpo.py --skip-job --datasets digits --seeds 0
    python benchmarks/bench_hpo.py --methods grid,optuna,optuna-hyperband,tpe,random,ga

MNIST is read from $DLHW_DATA and subsampled to a stratified ``--limit-train`` training images (default
10,000; validation is a further 20% of that draw) so a seed runs in minutes on 2 CPU cores. Every search runs
in-process with in-memory Optuna storage and the same settings as the main job (10-epoch trials, 300-epoch
budget). Prints a Markdown table and writes JSON to ``--out``. Machine load is printed with the timings:
wall time on a shared machine is inflated by other processes, CPU seconds much less so.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import markdown_table, run_cli, torch_threads, write_json_atomic  # noqa: E402
from common.cli import Parser, check_positive, check_writable, exit_process  # noqa: E402
from hw7_hpo.genetic import genetic_search  # noqa: E402
from hw7_hpo.grid import grid_search  # noqa: E402
from hw7_hpo.objective import DataSpec, Objective  # noqa: E402
from hw7_hpo.optuna_search import PRUNERS, optuna_search  # noqa: E402
from hw7_hpo.random_search import random_search  # noqa: E402
from hw7_hpo.report import compare_to_grid, jsonable  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    datasets: tuple[str, ...] = ("digits", "mnist")
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("grid", "optuna")
    budget_epochs: int = 300
    epochs_per_trial: int = 10
    limit_train: int = 10_000  # MNIST training subset (digits always uses all 1,150 training images)
    skip_job: bool = False
    out: str = "build/bench_hpo.json"


def cpu_seconds_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_default_job() -> dict:
    """Run ``python -m hw7_hpo.run`` exactly as a user would (fresh output folder) and time it."""
    with tempfile.TemporaryDirectory() as tmp:
        load_before, cpu_before, tic = os.getloadavg()[0], cpu_seconds_of_children(), time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "hw7_hpo.run", "--out", str(Path(tmp) / "job"),
                               "--no-progress"], cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - tic
        if done.returncode != 0:
            raise SystemExit(f"the default job failed:\n{done.stderr[-3000:]}")
        return {"wall_seconds": round(wall, 1),
                "cpu_seconds": round(cpu_seconds_of_children() - cpu_before, 1),
                "load_avg_1min_before": round(load_before, 2),
                "load_avg_1min_after": round(os.getloadavg()[0], 2),
                "cpu_count": os.cpu_count(), "summary_table": done.stdout.strip()}


def run_method(method: str, objective: Objective, budget: int, seed: int):
    if method == "grid":
        return grid_search(objective, budget, progress=False)
    if method == "random":
        return random_search(objective, budget, seed=seed, progress=False)
    if method == "ga":
        return genetic_search(objective, budget, seed=seed, progress=False)
    return optuna_search(objective, budget, method=method, seed=seed, progress=False,
                         study_name=f"bench-{method}-{seed}")


def efficiency(cfg: BenchConfig, dataset: str, seed: int) -> dict:
    limit = cfg.limit_train if dataset != "digits" else None
    splits = DataSpec(dataset, seed=seed, val_fraction=0.2, limit_train=limit).load()
    objective = Objective(splits, cfg.epochs_per_trial, seed=seed)
    results, seconds = [], {}
    for method in cfg.methods:
        tic = time.process_time()
        results.append(run_method(method, objective, cfg.budget_epochs, seed))
        seconds[method] = round(time.process_time() - tic, 1)
        print(f"  {dataset} seed {seed} {method}: best val {results[-1].best_val_acc:.4f} "
              f"in {results[-1].epochs} epochs, {seconds[method]} CPU s", flush=True)
    versus = compare_to_grid(results)
    return {"dataset": dataset, "seed": seed, "data": splits.summary(), "cpu_seconds": seconds,
            "grid_best_val_acc": versus["grid_best_val_acc"], "grid_epochs": versus["grid_epochs"],
            "methods": {r.method: {"best_val_acc": r.best_val_acc, "test_acc": r.test_acc, "epochs": r.epochs,
                                   "trials": len(r.trials), **versus["methods"][r.method]} for r in results}}


def parse(argv=None) -> BenchConfig:
    d = BenchConfig()
    p = Parser(prog="python benchmarks/bench_hpo.py", description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(d.datasets))
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)))
    p.add_argument("--methods", default=",".join(d.methods),
                   help=f"grid plus any of random, ga, {', '.join(PRUNERS)}")
    p.add_argument("--budget-epochs", type=int, default=d.budget_epochs)
    p.add_argument("--epochs-per-trial", type=int, default=d.epochs_per_trial)
    p.add_argument("--limit-train", type=int, default=d.limit_train)
    p.add_argument("--skip-job", action="store_true", help="do not time the default job")
    p.add_argument("--out", default=d.out)
    a = p.parse_args(argv)
    for flag in ("--budget-epochs", "--epochs-per-trial"):
        check_positive(flag, getattr(a, flag[2:].replace("-", "_")))
    check_writable(a.out)
    methods = tuple(m for m in a.methods.split(",") if m)
    if "grid" not in methods:
        methods = ("grid",) + methods
    return BenchConfig(tuple(a.datasets.split(",")), tuple(int(s) for s in a.seeds.split(",")), methods,
                       a.budget_epochs, a.epochs_per_trial, a.limit_train, a.skip_job, a.out)


def _main(argv=None) -> int:
    cfg = parse(argv)
    with torch_threads(1):  # as the main job (see RunConfig.threads)
        return _bench(cfg)


def main(argv=None) -> int:
    return run_cli(_main, argv, prog="python benchmarks/bench_hpo.py")


def _bench(cfg: BenchConfig) -> int:
    report: dict = {"config": asdict(cfg)}
    if not cfg.skip_job:
        print("timing the default job (python -m hw7_hpo.run) ...", flush=True)
        report["default_job"] = time_default_job()
        job = report["default_job"]
        print(f"default job: {job['wall_seconds']} s wall, {job['cpu_seconds']} CPU s on {job['cpu_count']} "
              f"cores (1-min load average {job['load_avg_1min_before']} -> {job['load_avg_1min_after']})",
              flush=True)
    rows, runs = [], []
    for dataset in cfg.datasets:
        for seed in cfg.seeds:
            run = efficiency(cfg, dataset, seed)
            runs.append(run)
            for method, m in run["methods"].items():
                if method == "grid":
                    continue
                rows.append({"dataset": dataset, "seed": seed, "method": method,
                             "grid best val": run["grid_best_val_acc"], "grid epochs": run["grid_epochs"],
                             "epochs to grid best": m["epochs_to_grid_best"] or "never",
                             "fraction": m["fraction_of_grid_epochs"] or "-",
                             "best val": m["best_val_acc"], "test acc": m["test_acc"]})
    report["efficiency"] = runs
    print("\n" + markdown_table(rows, floatfmt=".4f"))
    out = write_json_atomic(Path(cfg.out), jsonable(report))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    exit_process(main())
