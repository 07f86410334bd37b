"""forward_forward.ipynb on a fresh clone without data: it runs, says how to get MNIST, and still shows the
committed long-run results."""
import pytest

from common.notebooks import REPO_ROOT, execute_notebook

NOTEBOOK = REPO_ROOT / "hw2_mlp" / "forward_forward.ipynb"


@pytest.mark.notebook
@pytest.mark.slow
def test_runs_without_data_and_names_the_variable_to_set(tmp_path, monkeypatch):
    import nbformat

    monkeypatch.delenv("DLHW_DATA", raising=False)
    monkeypatch.setenv("DLHW_PROFILE", "quick")
    run = execute_notebook(NOTEBOOK, out_dir=tmp_path, timeout=300)
    assert run.ok, run.error
    executed = nbformat.read(tmp_path / NOTEBOOK.relative_to(REPO_ROOT), as_version=4)
    shown = "\n".join(str(out.get("text", "")) + str(out.get("data", {}).get("text/markdown", ""))
                      for cell in executed.cells if cell.cell_type == "code" for out in cell.get("outputs", []))
    assert "No MNIST found" in shown and "DLHW_DATA" in shown
    assert "paper, 4×2000" in shown  # the analysis of the committed results ran
