"""Matplotlib helpers that save to files and never need a display.

Importing this module does not change the backend: matplotlib itself falls back to Agg without a display,
and notebooks keep their inline backend."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` (creating folders) and return the path; the figure stays open for notebooks."""
    import io

    from .io import write_bytes_atomic

    path = Path(path)
    buffer = io.BytesIO()  # rendered in memory, then written atomically: a kill never leaves half an image
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def plot_curves(curves: Mapping[str, Sequence[float]], *, xlabel: str = "epoch", ylabel: str = "",
                title: str = "", x: Mapping[str, Sequence[float]] | None = None, logy: bool = False,
                ax=None):
    """Several named curves on one axis (e.g. loss per optimizer). Returns the figure."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        xs = x[name] if x is not None else np.arange(1, len(values) + 1)
        ax.plot(xs, values, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], *, title: str = "", normalize: bool = True,
                   ax=None):
    """Heat map of a confusion matrix (rows true, columns predicted), row-normalised by default."""
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    size = max(4.0, 0.45 * len(class_names))
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def plot_bars(values: Mapping[str, float], *, ylabel: str = "", title: str = "", sort: bool = True, ax=None):
    """A bar chart of named values (e.g. per-class F1), sorted ascending so the worst come first."""
    items = sorted(values.items(), key=lambda kv: kv[1]) if sort else list(values.items())
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(6, 0.3 * len(items)), 4))
    ax.bar([k for k, _ in items], [v for _, v in items])
    ax.tick_params(axis="x", rotation=90)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    return fig
