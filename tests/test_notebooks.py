"""Every notebook in the repository: committed without outputs, and executes headless in the quick profile."""
import os

import pytest

from common.notebooks import (REPO_ROOT, execute_notebook, find_notebooks, missing_data, notebook_outputs,
                              output_problems, skip_reason)

NOTEBOOKS = find_notebooks()
IDS = [str(p.relative_to(REPO_ROOT)) for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in the repository"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    assert notebook_outputs(path) == 0, f"{path} carries outputs: clear them before committing"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executes_in_quick_profile(path, monkeypatch, tmp_path):
    import nbformat

    missing = missing_data(path)
    if missing:
        pytest.skip(skip_reason(missing))
    monkeypatch.setenv("DLHW_PROFILE", "quick")
    out_dir = REPO_ROOT / "build" / "notebooks" if os.environ.get("CI") else tmp_path
    run = execute_notebook(path, out_dir=out_dir, timeout=600)
    assert run.ok, f"{path} failed after {run.seconds:.0f}s: {run.error}"
    executed = nbformat.read(out_dir / path.relative_to(REPO_ROOT), as_version=4)
    problems = output_problems(executed)
    assert not problems, f"{path}: the executed copy shows " + "; ".join(problems[:5])


def test_executed_copies_keep_their_figures(tmp_path, monkeypatch):
    import nbformat

    monkeypatch.setenv("MPLBACKEND", "Agg")  # as in the test session: must not leak into the kernel
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")])
    path = tmp_path / "fig.ipynb"
    nbformat.write(nb, path)
    run = execute_notebook(path, out_dir=tmp_path / "out", timeout=120)
    assert run.ok, run.error
    executed = nbformat.read(tmp_path / "out" / "fig.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for o in executed.cells[0].outputs)
    assert (tmp_path / "out" / "fig.html").exists()
    assert os.environ["MPLBACKEND"] == "Agg"  # restored


def test_output_problems_finds_warnings_errors_frozen_bars_and_trainer_dicts():
    import nbformat

    def stream(text):
        return nbformat.v4.new_output("stream", name="stderr", text=text)

    cells = [nbformat.v4.new_code_cell("x", outputs=[stream(t)]) for t in (
        "/x.py:3: FutureWarning: `a` is deprecated\n",
        "[E 12:00] ERROR 2026 gpuGetDeviceCount failed\n",
        "epochs:   0%|          | 0/5 [00:00<?, ?it/s]\n",
        "{'loss': 2.31, 'grad_norm': 1.0}\n",
        "test accuracy 0.97, error 3 %\n")]
    found = output_problems(nbformat.v4.new_notebook(cells=cells))
    assert [f.split(":")[0] for f in found] == ["cell 0", "cell 1", "cell 2", "cell 3"], found


def test_runner_reports_missing_and_corrupt_notebooks_and_runs_the_rest(tmp_path, capsys):
    import nbformat

    from common.notebooks import main

    corrupt = tmp_path / "corrupt.ipynb"
    corrupt.write_text("{not json", encoding="utf-8")
    good = tmp_path / "good.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), good)
    code = main([str(corrupt), str(tmp_path / "missing.ipynb"), str(good), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "cannot read the notebook" in out and "no such notebook" in out
    assert (tmp_path / "out" / "good.ipynb").exists()  # the good one still ran after the corrupt one
    assert out.count("FAILED") == 2 and " ok " in out


def test_notebook_declaring_absent_data_is_skipped_with_the_variable_to_set(tmp_path, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["dlhw"] = {"needs_data": ["MNIST/raw"]}
    path = tmp_path / "needs.ipynb"
    nbformat.write(nb, path)
    monkeypatch.delenv("DLHW_DATA", raising=False)
    assert missing_data(path) == ["MNIST/raw"]
    assert "DLHW_DATA" in skip_reason(missing_data(path))
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    monkeypatch.setenv("DLHW_DATA", str(tmp_path / "data"))
    assert missing_data(path) == []
