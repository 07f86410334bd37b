"""The committed run records under hw7_hpo/results/ are what the README and the notebook quote: the README's
tables are the digits record verbatim, the record is self-consistent, and (slow) a fresh default run of the
main job reproduces every column but the seconds."""
from __future__ import annotations

from pathlib import Path

import pytest

from common import markdown_table
from hw7_hpo.report import comparison_rows, config_rows, load_run
from hw7_hpo.run import DATASET_DEFAULTS, RunConfig, main

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "hw7_hpo" / "results" / "digits"
CIFAR = REPO / "hw7_hpo" / "results" / "cifar10"
TIMING = ("train s", "wall s (this run)")


def tables(text: str) -> list[str]:
    """The Markdown tables of ``text``, each as one string."""
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append("\n".join(current))
            current = []
    return found + (["\n".join(current)] if current else [])


def readme_main_job() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## The main job")
    return text[start:text.index("## Profiles, data and hardware", start)]


def untimed(table: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING]
    return [[row[i] for i in keep] for row in rows]


def test_readme_quotes_the_committed_digits_record_verbatim():
    summary = tables((DIGITS / "summary.md").read_text(encoding="utf-8"))
    quoted = tables(readme_main_job())
    assert quoted == [summary[0], summary[2]], "regenerate the README tables from hw7_hpo/results/digits/"


def test_the_digits_record_is_the_default_job_and_consistent():
    record = load_run(DIGITS)
    defaults = RunConfig()
    assert {k: record.run[k] for k in ("dataset", "budget_epochs", "epochs_per_trial", "seed", "threads")} == \
        {"dataset": "digits", "budget_epochs": defaults.budget_epochs, "epochs_per_trial": defaults.epochs_per_trial,
         "seed": 0, "threads": 1}
    assert tuple(record.results) == defaults.methods
    summary = tables((DIGITS / "summary.md").read_text(encoding="utf-8"))
    results = list(record.results.values())
    assert markdown_table(comparison_rows(results)) == summary[0]
    assert markdown_table(config_rows(results, record.baseline)) == summary[2]
    for r in results:
        assert r.epochs <= r.budget_epochs == defaults.budget_epochs


@pytest.mark.skipif(not (CIFAR / "results.json").is_file(), reason="no committed CIFAR-10 record")
def test_the_cifar10_record_matches_the_notebook_full_profile_settings():
    record = load_run(CIFAR)
    d = DATASET_DEFAULTS["cifar10"]
    assert (record.run["dataset"], record.run["budget_epochs"], record.run["epochs_per_trial"],
            record.run["limit_train"]) == ("cifar10", d.budget_epochs, d.epochs_per_trial, d.limit_train)
    for r in record.results.values():
        assert r.trials and r.epochs <= r.budget_epochs


@pytest.mark.slow
def test_a_fresh_default_job_reproduces_the_committed_record(tmp_path, capsys):
    """The README's figures are reproducible: everything but the seconds (same torch build and CPU kernels;
    the record's facts name them)."""
    out = tmp_path / "fresh"
    assert main(["--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    fresh = tables((out / "summary.md").read_text(encoding="utf-8"))
    committed = tables((DIGITS / "summary.md").read_text(encoding="utf-8"))
    assert untimed(fresh[0]) == untimed(committed[0])
    assert fresh[1:] == committed[1:]  # best-so-far and best-config tables
