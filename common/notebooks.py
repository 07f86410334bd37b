"""Execute notebooks headless and report: ``python -m common.notebooks [--out build/notebooks] [paths...]``.

Each notebook runs top to bottom with nbclient in the active profile (``$DLHW_PROFILE``, default quick),
with its own folder as working directory. Executed copies (``.ipynb``) and HTML renderings are written under
``--out``; a table of notebook, status and seconds is printed; the exit code is 1 if any notebook failed.
A missing or unreadable notebook is a failed row with a one-line reason; the others still run.
:func:`output_problems` lists what a reader should never see in an executed copy (warnings, library error
lines, frozen progress bars, raw trainer dicts).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "build", ".ipynb_checkpoints", ".git", "node_modules"}


@dataclass(frozen=True)
class NotebookRun:
    path: Path
    ok: bool
    seconds: float
    error: str = ""
    skipped: str = ""  # the reason, when the notebook's data is absent (not a failure)


def missing_data(path: Path, root: Path | None = None) -> list[str]:
    """The folders a notebook declares it needs under the data root (``metadata.dlhw.needs_data``, e.g.
    ``["MNIST/raw"]``) that are absent there; ``root`` defaults to ``$DLHW_DATA``. Empty when all present."""
    import json

    from .config import data_root

    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return []  # reported by execute_notebook
    needs = meta.get("dlhw", {}).get("needs_data", [])
    root = root or data_root()
    return [n for n in needs if root is None or not (root / n).exists()]


def skip_reason(missing: list[str]) -> str:
    return (f"needs {', '.join(missing)} under $DLHW_DATA; set DLHW_DATA to the data folder "
            f"(e.g. export DLHW_DATA=../shared/data)")


def find_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """Every committed-style ``*.ipynb`` below ``root``, skipping virtualenvs, build output and checkpoints."""
    return sorted(p for p in root.rglob("*.ipynb") if not SKIP_DIRS & set(p.relative_to(root).parts))


def notebook_outputs(path: Path) -> int:
    """How many code cells of ``path`` carry outputs or execution counts (committed notebooks must have 0)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")))


def execute_notebook(path: Path, out_dir: Path | None = None, timeout: int = 900,
                     kernel_name: str = "python3") -> NotebookRun:
    """Run ``path``; write ``<out_dir>/<relative path>.ipynb`` and ``.html`` when ``out_dir`` is given."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path).resolve()
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        return NotebookRun(path, False, 0.0, f"no such notebook: {path}")
    except Exception as err:  # not JSON, not a notebook, unreadable
        return NotebookRun(path, False, 0.0, f"cannot read the notebook ({type(err).__name__}: "
                                             f"{' '.join(str(err).split())[:160]})")
    env_profile = os.environ.setdefault("DLHW_PROFILE", "quick")
    # the kernel inherits our environment: a headless "Agg" set for tests would swallow every figure, so the
    # kernel gets the inline backend, which stores figures as PNG outputs in the executed copy
    saved_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    tic = time.perf_counter()
    error = ""
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1] if str(err).strip() else repr(err)
    except Exception as err:  # kernel died, timeout...
        error = f"{type(err).__name__}: {err}"
    finally:
        if saved_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = saved_backend
    seconds = time.perf_counter() - tic
    if out_dir is not None:
        try:
            rel = path.relative_to(REPO_ROOT)
        except ValueError:
            rel = Path(path.name)
        target = Path(out_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        nb.metadata["dlhw"] = {"profile": env_profile, "seconds": round(seconds, 1), "error": error}
        nbformat.write(nb, target)
        from nbconvert import HTMLExporter

        html, _ = HTMLExporter().from_notebook_node(nb)
        target.with_suffix(".html").write_text(html, encoding="utf-8")
    return NotebookRun(path, not error, seconds, error)


# What a reader of an executed notebook should never see (issue: clean outputs).
_PROBLEMS = (
    (re.compile(r"\b\w*Warning\b:"), "a warning"),
    (re.compile(r"\bERROR\b"), "a library error line"),
    (re.compile(r"(?<!\d)0%\|"), "a progress bar frozen at 0 %"),
    (re.compile(r"\{'loss': [-\d.e]+"), "a raw trainer log dict"),
)


def output_problems(nb) -> list[str]:
    """Lines of the executed notebook ``nb`` (an nbformat node) that show a warning, a library error line, a
    progress bar stuck at 0 % or a raw ``{'loss': ...}`` dict, as ``"cell N: <what>: <line>"``."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            texts = [out.get("text", "")] if out.get("output_type") == "stream" else []
            data = out.get("data", {})
            texts += [data.get("text/plain", "")] if "text/html" not in data else []
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for pattern, what in _PROBLEMS:
                    match = pattern.search(text)
                    if match:
                        line = text[text.rfind("\n", 0, match.start()) + 1:].split("\n", 1)[0]
                        found.append(f"cell {index}: {what}: {line.strip()[:120]}")
    return found


def _main(argv: list[str] | None) -> int:
    from .cli import Parser, check_positive, check_writable

    parser = Parser(prog="python -m common.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: all in the repo)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    check_positive("--timeout", args.timeout)
    check_writable(args.out)
    paths = args.paths or find_notebooks()
    if not paths:
        print("no notebooks found")
        return 0
    runs = []
    for path in paths:
        missing = missing_data(path)
        if missing:
            print(f"skipping {path}: {skip_reason(missing)}", flush=True)
            runs.append(NotebookRun(Path(path).resolve(), True, 0.0, skipped=skip_reason(missing)))
            continue
        print(f"running {path} ...", flush=True)
        runs.append(execute_notebook(path, args.out, args.timeout))

    def name(r: NotebookRun) -> str:
        return str(r.path.relative_to(REPO_ROOT) if r.path.is_relative_to(REPO_ROOT) else r.path)

    width = max(len(name(r)) for r in runs)
    print(f"\n{'notebook':<{width}}  status  seconds")
    for r in runs:
        status = "skip" if r.skipped else "ok" if r.ok else "FAILED"
        print(f"{name(r):<{width}}  {status:<6}  {r.seconds:7.1f}")
        if r.error or r.skipped:
            print(f"    {r.error or r.skipped}")
    print(f"\nexecuted copies and HTML in {args.out}")
    return 0 if all(r.ok for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    from .cli import run_cli

    return run_cli(_main, argv, prog="python -m common.notebooks")


if __name__ == "__main__":
    from .cli import exit_process

    exit_process(main())
