"""The output folder of a run: ``summary.md`` (comparison tables), ``results.json`` and PNG plots.

Every file is written to a temporary name and renamed into place, so a reader (or a kill) never sees half a
file. Plots: ``best_so_far.png`` (best validation accuracy vs training epochs consumed, one step curve per
method) and, per Optuna method, ``optuna_history-<method>.png`` and ``optuna_importances-<method>.png`` from
``optuna.visualization.matplotlib``.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from dataclasses import dataclass

from common import CheckpointError, markdown_table, read_json, write_json_atomic, write_text_atomic
from common.plots import plt, save_figure

from .records import MethodResult, TrialRecord, best_so_far_table
from .space import SEARCH_SPACE


def save_figure_atomic(fig, path: Path) -> Path:
    """``common.plots.save_figure`` (atomic), then close the figure."""
    save_figure(fig, path)
    plt.close(fig)
    return path


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf turned into ``None`` (strict JSON) and tuples into lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def fmt_value(v: Any) -> str:
    """Hyperparameter values for tables: 3 significant digits for floats."""
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def compare_to_grid(results: Sequence[MethodResult]) -> dict:
    """Epochs each method needed to match grid search's best validation accuracy, also as a fraction of
    the epochs grid search consumed (the efficiency figure of the homework; ``None`` if never reached)."""
    grid = next((r for r in results if r.method == "grid"), None)
    if grid is None or grid.best_val_acc is None:
        return {}
    out = {"grid_best_val_acc": grid.best_val_acc, "grid_epochs": grid.epochs, "methods": {}}
    for r in results:
        reached = r.epochs_to_reach(grid.best_val_acc)
        out["methods"][r.method] = {"epochs_to_grid_best": reached,
                                    "fraction_of_grid_epochs": reached / grid.epochs if reached else None}
    return out


def comparison_rows(results: Sequence[MethodResult]) -> list[dict]:
    """The main table: one row per method."""
    versus = compare_to_grid(results).get("methods", {})
    rows = []
    for r in results:
        row = r.summary_row()
        v = versus.get(r.method, {})
        fraction = v.get("fraction_of_grid_epochs")
        rows.append({
            "method": r.method,
            "best val acc": row["best_val_acc"] if row["best_val_acc"] is not None else "-",
            "test acc (best config)": row["test_acc"] if row["test_acc"] is not None else "-",
            "epochs used / budget": f"{row['epochs']} / {row['budget_epochs']}",
            "trials (complete/pruned/diverged)": f"{row['trials']} ({row['complete']}/{row['pruned']}/"
                                                 f"{row['diverged']})",
            "epochs to grid's best": v.get("epochs_to_grid_best") or ("-" if versus else "n/a"),
            "fraction of grid's epochs": f"{fraction:.2f}" if fraction is not None else "-",
            "train s": f"{row['train_seconds']:.1f}",
            "wall s (this run)": f"{row['wall_seconds']:.1f}",
        })
    return rows


def config_rows(results: Sequence[MethodResult], baseline: TrialRecord | None = None) -> list[dict]:
    rows = []
    if baseline is not None:
        rows.append({"method": "baseline", **{k: fmt_value(v) for k, v in baseline.config.items()}})
    for r in results:
        if r.best_config is not None:
            values = {p.name: fmt_value(r.best_config[p.name]) for p in SEARCH_SPACE}
            rows.append({"method": r.method, **values})
    return rows


def checkpoints(budget: int) -> list[int]:
    """Epoch counts at which the best-so-far table samples the curves."""
    return sorted({max(1, round(budget * f)) for f in (0.1, 0.2, 0.35, 0.5, 1.0)})


def plot_best_so_far(results: Sequence[MethodResult], title: str = ""):
    """Step curves of best validation accuracy vs cumulative training epochs."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        epochs, best = r.curve()
        if epochs:
            ax.step([0] + epochs, [float("nan")] + best, where="post", label=r.method)
    grid = next((r for r in results if r.method == "grid" and r.best_val_acc is not None), None)
    if grid is not None:
        ax.axhline(grid.best_val_acc, color="grey", lw=0.8, ls="--", label="grid's best")
    finite = [b for r in results for b in r.curve()[1] if b == b]
    if finite:
        ax.set_ylim(max(min(finite) - 0.01, 0.0), min(max(finite) + 0.005, 1.0))
    ax.set(xlabel="training epochs consumed", ylabel="best validation accuracy so far", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def optuna_figures(study, out_dir: Path, method: str) -> list[Path]:
    """Optuna's own optimisation-history and parameter-importance plots (matplotlib backend)."""
    from optuna.visualization import matplotlib as ovm

    paths = []
    # Optuna's plots switch matplotlib to its own style globally: rc_context puts the caller's style back
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")  # these plots are flagged experimental
        ax = ovm.plot_optimization_history(study)
        paths.append(save_figure_atomic(ax.figure, out_dir / f"optuna_history-{method}.png"))
        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        if len(complete) >= 2:  # importances need a fitted model over finished trials
            ax = ovm.plot_param_importances(study)
            paths.append(save_figure_atomic(ax.figure, out_dir / f"optuna_importances-{method}.png"))
    return paths


def summary_markdown(results: Sequence[MethodResult], *, title: str, facts: Sequence[str],
                     baseline: TrialRecord | None, plots: Sequence[str]) -> str:
    budget = max((r.budget_epochs for r in results), default=0)
    lines = [f"# {title}", ""]
    lines += [f"- {f}" for f in facts]
    if baseline is not None:
        lines.append(f"- Baseline (default config, one full trial of {baseline.epochs} epochs): "
                     f"val acc {baseline.val_acc:.4f}, test acc {baseline.test_acc:.4f}.")
    lines += ["", "## Comparison at an equal budget of training epochs", "",
              markdown_table(comparison_rows(results)), "",
              "Best val acc counts complete trials only; test acc is that config's accuracy on the test "
              "split (never used to choose). *Epochs to grid's best*: epochs consumed when the method's "
              "best-so-far first matched grid search's best validation accuracy. *Train s*: seconds spent "
              "in trials (all invocations); *wall s*: this invocation only (a resumed method reuses its "
              "recorded trials).", "",
              "## Best-so-far validation accuracy vs epochs consumed", "",
              markdown_table(best_so_far_table(results, checkpoints(budget))), "",
              "## Best configuration per method", "",
              markdown_table(config_rows(results, baseline)), ""]
    if plots:
        lines += ["## Plots", ""] + [f"- `{p}`" for p in plots] + [""]
    return "\n".join(lines)


def write_outputs(out_dir: Path, results: Sequence[MethodResult], *, title: str, facts: Sequence[str],
                  baseline: TrialRecord | None, run_config: Mapping, studies: Mapping[str, Any] = {}) -> str:
    """Write plots, ``results.json`` and ``summary.md`` into ``out_dir``; return the summary text."""
    plots = [save_figure_atomic(plot_best_so_far(results, title), out_dir / "best_so_far.png")]
    for method, study in studies.items():
        plots += optuna_figures(study, out_dir, method)
    names = [p.name for p in plots]
    payload = {"run": dict(run_config), "facts": list(facts),
               "baseline": baseline.to_dict() if baseline else None,
               "comparison": compare_to_grid(results),
               "methods": {r.method: r.to_dict() for r in results}, "plots": names}
    write_json_atomic(out_dir / "results.json", jsonable(payload))
    text = summary_markdown(results, title=title, facts=facts, baseline=baseline, plots=names)
    write_text_atomic(out_dir / "summary.md", text)
    return text


@dataclass(frozen=True)
class RunRecord:
    """A finished run read back from its folder (``results.json`` as written by :func:`write_outputs`)."""

    folder: Path
    run: dict  # the run's public config (flags)
    facts: list
    baseline: TrialRecord | None
    results: dict  # method -> MethodResult, in the run's order
    plots: list


def load_run(folder: str | Path) -> RunRecord:
    """Read a run's ``results.json`` (e.g. a committed record under ``hw7_hpo/results/``); a damaged file is a
    one-line :class:`~common.CheckpointError`."""
    folder = Path(folder)
    data = read_json(folder / "results.json", "run results")
    try:
        results = {m: MethodResult.from_dict(r) for m, r in data["methods"].items()}
        baseline = TrialRecord.from_dict(data["baseline"]) if data.get("baseline") else None
        return RunRecord(folder, dict(data["run"]), list(data["facts"]), baseline, results,
                         list(data.get("plots", [])))
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{folder / 'results.json'} is not the results of a hw7_hpo run; regenerate it "
                              f"with python -m hw7_hpo.run.") from None
