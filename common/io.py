"""Files written so that a kill never leaves half of one, and checkpoints read without running code.

- :func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic`, :func:`save_atomic`: write to a temporary file in
  the same folder, then ``os.replace`` it over the target (atomic on POSIX).
- :func:`load_checkpoint`: ``torch.load(..., weights_only=True)``; a pickle that would build arbitrary
  objects (and so could run code) is refused with a one-line :class:`~common.errors.CheckpointError`.
  Checkpoints therefore hold only tensors, numbers, strings, lists, tuples and dicts.
- :func:`settings_key`: a short stable hash of every setting that changes a result, used in checkpoint and
  cache file names so a run with other settings never resumes from (or reports) another run's state.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .errors import CheckpointError


def _atomic(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (e.g. a PNG rendered into a buffer)."""
    return _atomic(path, lambda f: f.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; parent folders are created."""
    return _atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` atomically (a kill mid-write leaves the previous file intact)."""
    import torch

    return _atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; raise :class:`CheckpointError` in one line when the file
    is corrupt or holds anything but tensors, numbers, strings and containers."""
    import pickle

    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4": noise next to the error below
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(f"checkpoint {path} was refused: it is not a plain file of tensors and values, "
                                  f"and loading it could run code; delete it (or choose another checkpoint "
                                  f"folder) to start fresh.") from None
        raise CheckpointError(f"checkpoint {path} cannot be read (not a torch checkpoint, or truncated); "
                              f"delete it to start fresh.") from None
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist.") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, IndexError, KeyError... on garbage
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:160]}); delete it to start fresh.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict; delete it to "
                              f"start fresh.")
    return state


def settings_key(settings: dict, length: int = 12) -> str:
    """A short stable hash of a JSON-able dict of settings (key order does not matter).

    >>> settings_key({"lr": 0.1, "seed": 0}) == settings_key({"seed": 0, "lr": 0.1})
    True
    >>> settings_key({"lr": 0.1}) != settings_key({"lr": 0.2})
    True
    """
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def read_json(path: str | Path, what: str = "record") -> Any:
    """Read a JSON file written by this project; a corrupt one is a one-line :class:`CheckpointError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what} {path} is not valid JSON ({' '.join(str(err).split())[:120]}); delete "
                              f"it, or choose another output folder.") from None
