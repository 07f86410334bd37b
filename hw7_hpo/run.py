"""The main job: compare grid search, random search, Optuna (TPE + pruning) and a DEAP genetic algorithm
at an equal budget of training epochs.

    python -m hw7_hpo.run                                   # digits, all four methods, about 1 min on 2 cores
    python -m hw7_hpo.run --dataset cifar10                 # CIFAR-10 from $DLHW_DATA (5k-image subset)
    python -m hw7_hpo.run --methods optuna --workers 2 --storage postgresql://u:p@host/db --study-name s

Writes ``summary.md``, ``results.json`` and PNG plots to ``--out`` (default
``runs/hpo-<dataset>-seed<seed>``).
Re-running the same command after a kill resumes: grid/random/GA from ``<out>/trials/*.jsonl``, Optuna from
its storage. A folder holds one experiment: rerunning it with other settings (the budget included) is refused
in one line that names ``--out``. Bad input is one line on stderr, exit code 2, and nothing written.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from common import (CheckpointError, UsageError, UserError, add_standard_args, check_positive,
                    check_writable, get_device, read_json, run_cli, torch_threads, write_json_atomic)
from common.cli import Parser, exit_process, positive_int, resolve_data_root
from common.data import DATASETS

from .genetic import genetic_search
from .grid import grid_search
from .objective import DataSpec, Objective
from .optuna_search import PRUNERS, check_study, optuna_search, study_identity
from .random_search import random_search
from .records import MethodResult, TrialLog, TrialRecord
from .report import comparison_rows, write_outputs
from .space import default_config
from .storage import check_storage, default_storage, open_storage, redact, scheme, storage_file

PROG = "python -m hw7_hpo.run"
METHODS = ("grid", "random", "optuna", "optuna-hyperband", "tpe", "ga")
DEFAULT_METHODS = ("grid", "random", "optuna", "ga")
RUN_FILE = "run.json"
BASELINE_FILE = "baseline.json"


@dataclass(frozen=True)
class DatasetDefaults:
    """Per-dataset defaults, sized so the whole job takes minutes on a CPU (each is a flag)."""

    limit_train: int | None  # stratified training subset (None: all)
    budget_epochs: int
    epochs_per_trial: int


DATASET_DEFAULTS = {
    "digits": DatasetDefaults(None, 300, 10),  # 1,150 images: ~1 min on 2 cores
    "mnist": DatasetDefaults(10_000, 300, 10),
    "fashion_mnist": DatasetDefaults(10_000, 300, 10),
    # 3,072 inputs per image: an MLP epoch on 5k images costs ~40x a digits epoch, so fewer, shorter trials
    "cifar10": DatasetDefaults(5_000, 50, 5),
}


@dataclass(frozen=True)
class RunConfig:
    """Defaults of the main job (those of digits; see DATASET_DEFAULTS); every field is a CLI flag."""

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
    limit_train: int | None = None  # training images (None: all)
    val_fraction: float = 0.2
    device: str | None = None
    threads: int = 1  # torch threads per process: a small MLP gains little from more, and trials (--workers)
    # are the better unit of parallelism; one thread also makes every float sum run in one fixed order
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
    def data(self) -> DataSpec:
        return DataSpec(self.dataset, self.data_root, self.seed, self.val_fraction, self.limit_train)

    def identity(self) -> dict:
        """What a resumed run must share with the records in the output folder: everything that changes a
        result, the budget included (a folder never mixes two budgets' trials)."""
        return {"dataset": self.dataset, "seed": self.seed, "epochs_per_trial": self.epochs_per_trial,
                "budget_epochs": self.budget_epochs, "limit_train": self.limit_train,
                "val_fraction": self.val_fraction}


def build_parser() -> Parser:
    d = RunConfig()
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default=d.dataset, help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--methods", default=",".join(d.methods), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--budget-epochs", type=positive_int, default=None,
                   help="training epochs per method (default: 300; 50 for cifar10)")
    p.add_argument("--epochs-per-trial", type=positive_int, default=None,
                   help="epochs of a full trial (default: 10; 5 for cifar10)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=None, help="output folder (default runs/hpo-<dataset>-seed<seed>)")
    p.add_argument("--storage", default=None, help="Optuna storage URL: sqlite:///f.db, journal:///f.log, "
                                                   "postgresql://... (default sqlite:///<out>/optuna.db)")
    p.add_argument("--study-name", default=None,
                   help="Optuna study name prefix (default hpo-<dataset>-seed<seed>)")
    p.add_argument("--workers", type=positive_int, default=d.workers,
                   help="Optuna worker processes on this machine")
    p.add_argument("--limit-train", type=int, default=-1,
                   help="training images (stratified subset); -1: the dataset's default (all of digits, "
                        "10k of MNIST/Fashion-MNIST, 5k of CIFAR-10); 0: all")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--threads", type=positive_int, default=d.threads, help="torch CPU threads per process")
    add_standard_args(p, profile=False, threads=False)  # --device, --data-root, --no-progress
    return p


def parse_args(argv: list[str] | None = None) -> RunConfig:
    """The flags as a :class:`RunConfig` (dataset defaults filled in); raises :class:`UsageError`."""
    a = build_parser().parse_args(argv)
    dataset = a.dataset.lower().replace("-", "_")
    check_dataset(dataset)
    defaults = DATASET_DEFAULTS[dataset]
    if a.limit_train < -1:
        raise UsageError(f"--limit-train must be -1 (dataset default), 0 (all) or a positive count, "
                         f"got {a.limit_train}.")
    limit = defaults.limit_train if a.limit_train == -1 else (a.limit_train or None)
    return RunConfig(dataset=dataset, methods=tuple(m.strip() for m in a.methods.split(",") if m.strip()),
                     budget_epochs=a.budget_epochs or defaults.budget_epochs,
                     epochs_per_trial=a.epochs_per_trial or defaults.epochs_per_trial, seed=a.seed,
                     out=a.out, storage=a.storage, study_name=a.study_name, workers=a.workers,
                     data_root=a.data_root, limit_train=limit, val_fraction=a.val_fraction,
                     device=a.device, threads=a.threads, progress=False if a.no_progress else None)


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; use --dataset with one of {', '.join(DATASETS)}.")


def validate(cfg: RunConfig) -> RunConfig:
    """Check every flag, the output folder, its records and the storage; raise a one-line
    :class:`~common.UserError`. Writes nothing. Returns ``cfg`` with ``data_root`` resolved."""
    check_dataset(cfg.dataset)
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown or not cfg.methods:
        raise UsageError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; use --methods with a "
                         f"comma list of {', '.join(METHODS)}.")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise UsageError(f"--methods lists a method twice ({','.join(cfg.methods)}); list each once.")
    for flag in ("--budget-epochs", "--epochs-per-trial", "--workers", "--threads"):
        check_positive(flag, getattr(cfg, flag[2:].replace("-", "_")))
    if not 0.0 < cfg.val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in (0, 1), got {cfg.val_fraction}; e.g. 0.2.")
    if cfg.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {cfg.seed}.")
    get_device(cfg.device)  # ConfigError names the fix (--device tpu, cuda without a GPU)
    root = resolve_data_root(cfg.data_root)
    cfg = replace(cfg, data_root=str(root) if root is not None else None)
    check_output_folder(cfg)
    if any(m in PRUNERS for m in cfg.methods):
        check_storage(cfg.storage_url, pending_dirs=(cfg.out_dir,))
    return cfg


def check_output_folder(cfg: RunConfig) -> None:
    """``--out`` must be creatable, and a folder that holds a run must hold this experiment with readable
    records (run.json, baseline.json, trial logs)."""
    out = cfg.out_dir
    check_writable(out, "--out")
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; give a folder path.")
    run_file = out / RUN_FILE
    if not run_file.exists():
        if any(out.iterdir()):
            raise UsageError(f"--out {out} is a non-empty folder without {RUN_FILE}; choose a new or empty "
                             f"folder.")
        return
    record = read_json(run_file, "run record")
    stored = record.get("identity") if isinstance(record, dict) else None
    if not isinstance(stored, dict):
        raise CheckpointError(f"run record {run_file} holds no run identity; delete the folder or choose "
                              f"another --out.")
    if stored != cfg.identity():
        differ = ", ".join(f"{k} {stored.get(k)!r} (now {v!r})" for k, v in cfg.identity().items()
                           if stored.get(k) != v)
        raise UsageError(f"--out {out} holds a run with other settings: {differ}; rerun with its flags to "
                         f"resume it, or choose a new --out for this experiment.")
    baseline = out / BASELINE_FILE
    if baseline.exists():
        _baseline_record(baseline)
    for method in cfg.methods:
        TrialLog(out / "trials" / f"{method}.jsonl").load(repair=False)


def _baseline_record(path: Path) -> TrialRecord:
    try:
        return TrialRecord.from_dict(read_json(path, "baseline record"))
    except (TypeError, ValueError, KeyError):
        raise CheckpointError(f"baseline record {path} is not a trial record; delete it (it is recomputed) "
                              f"or choose another --out.") from None


def check_existing_studies(cfg: RunConfig) -> None:
    """An Optuna study already in a ``--storage`` must be the same experiment, budget included (a study in
    the default storage is covered by ``run.json``). A storage file that does not exist yet is not created."""
    if cfg.storage is None or not any(m in PRUNERS for m in cfg.methods):
        return
    if scheme(cfg.storage) in ("sqlite", "journal") and not storage_file(cfg.storage).exists():
        return
    storage = open_storage(cfg.storage)
    for m in cfg.methods:
        if m in PRUNERS:
            check_study(storage, f"{cfg.base_study_name}-{m}", study_identity_of(m, cfg))


def study_identity_of(method: str, cfg: RunConfig) -> dict:
    return {**study_identity(method, cfg.epochs_per_trial, cfg.seed, cfg.data),
            "budget_epochs": cfg.budget_epochs}


def public_config(cfg: RunConfig) -> dict:
    """The config as written to files: passwords hidden, the data folder left out (machine-specific)."""
    return {**asdict(cfg), "storage": redact(cfg.storage) if cfg.storage else None, "data_root": None}


def run_baseline(objective: Objective, out_dir: Path) -> TrialRecord:
    """The default config trained for one full trial (recorded once; a rerun reads it back)."""
    path = out_dir / BASELINE_FILE
    if path.exists():
        return _baseline_record(path)
    config = default_config()
    record = TrialRecord.from_outcome("baseline", 0, config, objective(config))
    write_json_atomic(path, record.to_dict())
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
                         data=cfg.data, progress=cfg.progress,
                         extra_identity={"budget_epochs": cfg.budget_epochs})


def environment() -> str:
    """What the figures depend on beyond the flags: CPU kernels differ by torch build and instruction set
    (different rounding can flip a pruning decision, and TPE then follows another path)."""
    import torch

    return (f"torch {torch.__version__}, CPU kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} thread(s)")


def run_job(cfg: RunConfig) -> tuple[list[MethodResult], str]:
    """Validate, load data, run every method (resuming), write the outputs; return results and summary."""
    import optuna

    tic = time.perf_counter()
    cfg = validate(cfg)
    splits = cfg.data.load()  # DataError (missing/corrupt files) before anything is written
    check_existing_studies(cfg)
    out = cfg.out_dir
    with torch_threads(cfg.threads):
        objective = Objective(splits, cfg.epochs_per_trial, seed=cfg.seed, device=cfg.device)
        write_json_atomic(out / RUN_FILE, {"identity": cfg.identity(), "last_config": public_config(cfg)})
        baseline = run_baseline(objective, out)
        results = [run_method(m, cfg, objective) for m in cfg.methods]
        env = environment()
    studies = {r.method: optuna.load_study(study_name=r.extra["study_name"],
                                           storage=open_storage(cfg.storage_url))
               for r in results if r.method in PRUNERS}
    facts = [f"Data: {splits.summary()} (seed {cfg.seed}).",
             f"Model: MLP (hw7_hpo/objective.py), trained with common.fit on {objective.device}; {env}.",
             f"Budget: {cfg.budget_epochs} training epochs per method; a full trial is "
             f"{cfg.epochs_per_trial} epochs.",
             f"Optuna storage: {'the SQLite file optuna.db in this folder' if cfg.storage is None else redact(cfg.storage)}, "
             f"studies `{cfg.base_study_name}-<method>`, {cfg.workers} worker process(es)."
             if studies else "Optuna: not run.",
             f"Job wall time (this invocation): {time.perf_counter() - tic:.1f} s."]
    summary = write_outputs(out, results, title=f"Hyperparameter search on {cfg.dataset}", facts=facts,
                            baseline=baseline, run_config=public_config(cfg), studies=studies)
    return results, summary


def _main(argv: list[str] | None) -> int:
    from common import markdown_table

    try:
        cfg = parse_args(argv)
        results, _ = run_job(cfg)
    except UserError as err:  # no message may carry a storage password
        err.args = (redact(str(err)),)
        raise
    print(markdown_table(comparison_rows(results)))
    print(f"\nwrote {cfg.out_dir / 'summary.md'}, results.json and plots")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":
    exit_process(main())
