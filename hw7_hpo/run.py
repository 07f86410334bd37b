"""The main job: compare grid search, random search, Optuna (TPE + pruning) and a DEAP genetic algorithm
at an equal budget of training epochs.

    python -m hw7_hpo.run                                   # digits, all four methods, < 3 min on 2 cores
    python -m hw7_hpo.run --dataset mnist --budget-epochs 200   # MNIST from $DLHW_DATA (10k-image subset)
    python -m hw7_hpo.run --methods optuna --workers 2 --storage postgresql://u:p@host/db --study-name s

Writes ``summary.md``, ``results.json`` and PNG plots to ``--out`` (default
``runs/hpo-<dataset>-seed<seed>``).
Re-running the same command after a kill resumes: grid/random/GA from ``<out>/trials/*.jsonl``, Optuna from
its storage. Bad input is one line on stderr, exit code 2, and nothing written.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import ConfigError, DataError, get_device
from common.data import DATASETS

from .genetic import genetic_search
from .grid import grid_search
from .objective import DataSpec, Objective
from .optuna_search import PRUNERS, StudyMismatchError, check_study, optuna_search, study_identity
from .random_search import random_search
from .records import MethodResult, TrialLog, TrialRecord
from .report import comparison_rows, write_atomic, write_outputs
from .space import default_config
from .storage import (StorageError, check_storage, default_storage, open_storage, redact, scheme,
                      storage_file)

METHODS = ("grid", "random", "optuna", "optuna-hyperband", "tpe", "ga")
DEFAULT_METHODS = ("grid", "random", "optuna", "ga")
# Non-digits datasets default to a stratified 10k-image training subset so the job stays minutes-long on CPU
# (pass --limit-train 0 for the whole training split).
DEFAULT_LIMIT_TRAIN = {"digits": None, "mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000}
RUN_FILE = "run.json"


class UsageError(ValueError):
    """A flag value the job cannot use (reported as one line, exit code 2)."""


@dataclass(frozen=True)
class RunConfig:
    """Defaults of the main job; every field is a CLI flag."""

    dataset: str = "digits"
    methods: tuple[str, ...] = DEFAULT_METHODS
    budget_epochs: int = 300  # per method: 30 full trials of 10 epochs
    epochs_per_trial: int = 10
    seed: int = 0
    out: str | None = None  # default runs/hpo-<dataset>-seed<seed>
    storage: str | None = None  # default sqlite:///<out>/optuna.db
    study_name: str | None = None  # default hpo-<dataset>-seed<seed>; one study per method: <name>-<method>
    workers: int = 1  # Optuna worker processes (grid/random/GA run in this process)
    data_root: str | None = None  # default $DLHW_DATA
    limit_train: int | None = -1  # -1: the dataset's default (DEFAULT_LIMIT_TRAIN); 0 or None: all
    val_fraction: float = 0.2
    device: str | None = None
    threads: int = 1  # torch threads per process: a small MLP gains little from more, and trials (--workers)
    # are the better unit of parallelism; under CPU contention extra threads cost far more than they give
    progress: bool | None = None  # None: bars on an interactive terminal

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/hpo-{self.dataset}-seed{self.seed}")

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage(self.out_dir)

    @property
    def base_study_name(self) -> str:
        return self.study_name or f"hpo-{self.dataset}-seed{self.seed}"

    @property
    def train_limit(self) -> int | None:
        if self.limit_train == -1:
            return DEFAULT_LIMIT_TRAIN.get(self.dataset)
        return self.limit_train or None

    @property
    def data(self) -> DataSpec:
        return DataSpec(self.dataset, self.data_root, self.seed, self.val_fraction, self.train_limit)

    def identity(self) -> dict:
        """What a resumed run must share with the records in the output folder (the budget may grow)."""
        return {"dataset": self.dataset, "seed": self.seed, "epochs_per_trial": self.epochs_per_trial,
                "limit_train": self.train_limit, "val_fraction": self.val_fraction}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UsageError(f"{message} (see python -m hw7_hpo.run --help)")


def build_parser() -> argparse.ArgumentParser:
    d = RunConfig()
    p = _Parser(prog="python -m hw7_hpo.run", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default=d.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--methods", default=",".join(d.methods), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--budget-epochs", type=int, default=d.budget_epochs, help="training epochs per method")
    p.add_argument("--epochs-per-trial", type=int, default=d.epochs_per_trial, help="epochs of a full trial")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=None, help="output folder (default runs/hpo-<dataset>-seed<seed>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL: sqlite:///f.db, journal:///f.log, "
                                                   "postgresql://... (default sqlite:///<out>/optuna.db)")
    p.add_argument("--study-name", default=None,
                   help="Optuna study name prefix (default hpo-<dataset>-seed<seed>)")
    p.add_argument("--workers", type=int, default=d.workers, help="Optuna worker processes on this machine")
    p.add_argument("--data-root", default=None, help="datasets folder (default $DLHW_DATA)")
    p.add_argument("--limit-train", type=int, default=d.limit_train,
                   help="training images (stratified subset); -1: 10k for MNIST/Fashion/CIFAR, all of "
                        "digits; 0: all")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads per process")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def parse_args(argv: list[str] | None = None) -> RunConfig:
    a = build_parser().parse_args(argv)
    methods = tuple(m.strip() for m in a.methods.split(",") if m.strip())
    return RunConfig(dataset=a.dataset.lower().replace("-", "_"), methods=methods,
                     budget_epochs=a.budget_epochs, epochs_per_trial=a.epochs_per_trial, seed=a.seed,
                     out=a.out, storage=a.storage, study_name=a.study_name, workers=a.workers,
                     data_root=a.data_root, limit_train=a.limit_train, val_fraction=a.val_fraction,
                     device=a.device, threads=a.threads, progress=False if a.no_progress else None)


def validate(cfg: RunConfig) -> None:
    """Check every flag, the output folder and the storage; raise UsageError/StorageError. Writes nothing."""
    if cfg.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {cfg.dataset!r}; use --dataset with one of {', '.join(DATASETS)}.")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown or not cfg.methods:
        raise UsageError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; use --methods with a "
                         f"comma list of {', '.join(METHODS)}.")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise UsageError(f"--methods lists a method twice ({','.join(cfg.methods)}); list each once.")
    for name, value in (("--budget-epochs", cfg.budget_epochs), ("--epochs-per-trial", cfg.epochs_per_trial),
                        ("--workers", cfg.workers), ("--threads", cfg.threads)):
        if value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value}; pass e.g. {name} "
                             f"{getattr(RunConfig(), name[2:].replace('-', '_'))}.")
    if cfg.limit_train is not None and cfg.limit_train < -1:
        raise UsageError(f"--limit-train must be -1 (dataset default), 0 (all) or a positive count, "
                         f"got {cfg.limit_train}.")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in (0, 1), got {cfg.val_fraction}; e.g. 0.2.")
    if cfg.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {cfg.seed}.")
    if cfg.device is not None:
        get_device(cfg.device)  # ConfigError names the fix
    out = cfg.out_dir
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder; give a folder path.")
        run_file = out / RUN_FILE
        if run_file.exists():
            stored = json.loads(run_file.read_text(encoding="utf-8")).get("identity")
            if stored != cfg.identity():
                raise UsageError(f"{out} holds a run with other settings ({stored}); rerun with those flags "
                                 f"to resume, or choose a new --out.")
        elif any(out.iterdir()):
            raise UsageError(f"--out {out} is a non-empty folder without {RUN_FILE}; choose a new or empty "
                             f"folder.")
    if any(m in PRUNERS for m in cfg.methods):
        check_storage(cfg.storage_url, pending_dirs=(out,))


def check_existing_studies(cfg: RunConfig) -> None:
    """An Optuna study already in a ``--storage`` must be the same experiment (a study in the default
    storage is covered by ``run.json``). A storage file that does not exist yet is not created here."""
    if cfg.storage is None or not any(m in PRUNERS for m in cfg.methods):
        return
    if scheme(cfg.storage) in ("sqlite", "journal") and not storage_file(cfg.storage).exists():
        return
    storage = open_storage(cfg.storage)
    for m in cfg.methods:
        if m in PRUNERS:
            check_study(storage, f"{cfg.base_study_name}-{m}",
                        study_identity(m, cfg.epochs_per_trial, cfg.seed, cfg.data))


def public_config(cfg: RunConfig) -> dict:
    """The config as written to results: the storage password hidden."""
    return {**asdict(cfg), "storage": redact(cfg.storage) if cfg.storage else None}


def run_baseline(objective: Objective, out_dir: Path) -> TrialRecord:
    """The default config trained for one full trial (recorded once; a rerun reads it back)."""
    path = out_dir / "baseline.json"
    if path.exists():
        return TrialRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    config = default_config()
    record = TrialRecord.from_outcome("baseline", 0, config, objective(config))
    write_atomic(path, json.dumps(record.to_dict()))
    return record


def run_method(method: str, cfg: RunConfig, objective: Objective) -> MethodResult:
    trials = cfg.out_dir / "trials"
    if method == "grid":
        return grid_search(objective, cfg.budget_epochs, log=TrialLog(trials / "grid.jsonl"),
                           progress=cfg.progress)
    if method == "random":
        return random_search(objective, cfg.budget_epochs, seed=cfg.seed,
                             log=TrialLog(trials / "random.jsonl"), progress=cfg.progress)
    if method == "ga":
        return genetic_search(objective, cfg.budget_epochs, seed=cfg.seed, log=TrialLog(trials / "ga.jsonl"),
                              progress=cfg.progress)
    return optuna_search(objective, cfg.budget_epochs, method=method, storage=cfg.storage_url,
                         study_name=f"{cfg.base_study_name}-{method}", seed=cfg.seed, workers=cfg.workers,
                         data=cfg.data, progress=cfg.progress)


def run_job(cfg: RunConfig) -> tuple[list[MethodResult], str]:
    """Validate, load data, run every method (resuming), write the outputs; return results and summary."""
    import optuna
    import torch

    tic = time.perf_counter()
    validate(cfg)
    splits = cfg.data.load()  # DataError (missing/corrupt files) before anything is written
    check_existing_studies(cfg)
    torch.set_num_threads(cfg.threads)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / RUN_FILE,
                 json.dumps({"identity": cfg.identity(), "last_config": public_config(cfg)}, indent=1))
    objective = Objective(splits, cfg.epochs_per_trial, seed=cfg.seed, device=cfg.device)
    baseline = run_baseline(objective, out)
    results = [run_method(m, cfg, objective) for m in cfg.methods]
    studies = {r.method: optuna.load_study(study_name=r.extra["study_name"],
                                           storage=open_storage(cfg.storage_url))
               for r in results if r.method in PRUNERS}
    facts = [f"Data: {splits.summary()} (seed {cfg.seed}).",
             f"Model: MLP (hw7_hpo/objective.py), trained with common.fit on {objective.device}.",
             f"Budget: {cfg.budget_epochs} training epochs per method; a full trial is "
             f"{cfg.epochs_per_trial} epochs.",
             f"Optuna storage: {redact(cfg.storage_url)}, studies `{cfg.base_study_name}-<method>`, "
             f"{cfg.workers} worker process(es)." if studies else "Optuna: not run.",
             f"Job wall time (this invocation): {time.perf_counter() - tic:.1f} s."]
    summary = write_outputs(out, results, title=f"Hyperparameter search on {cfg.dataset}", facts=facts,
                            baseline=baseline, run_config=public_config(cfg), studies=studies)
    return results, summary


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        results, _ = run_job(cfg)
    except (UsageError, StorageError, StudyMismatchError, ConfigError, DataError) as err:
        print(f"hw7_hpo.run: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hw7_hpo.run: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130
    from common import markdown_table

    print(markdown_table(comparison_rows(results)))
    print(f"\nwrote {cfg.out_dir / 'summary.md'}, results.json and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
