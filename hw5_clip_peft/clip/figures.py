"""Figures of the CLIP notebook: template sweeps as grouped bars (templates are categories, so no line is
drawn between them) and the worst classes' confusion."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from common.plots import plot_confusion


def template_bars(sweeps: Mapping[str, Sequence[dict]], key: str = "test_top1", *, chance: float | None = None,
                  title: str = ""):
    """Horizontal grouped bars: one group per template, one bar per model (``sweeps``: label -> rows with
    ``template`` and ``key``, the same templates in the same order). Returns the figure."""
    labels = list(sweeps)
    templates = [r["template"] for r in sweeps[labels[0]]]
    height = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(templates) * max(1, len(labels) / 1.5) + 1))
    ys = np.arange(len(templates))
    for i, label in enumerate(labels):
        ax.barh(ys + i * height, [r[key] for r in sweeps[label]], height=height, label=label)
    if chance is not None:
        ax.axvline(chance, color="k", linestyle=":", label=f"chance (1/{round(1 / chance)})")
    ax.set_yticks(ys + height * (len(labels) - 1) / 2, templates)
    ax.invert_yaxis()
    ax.set(xlabel=key.replace("_", " "), title=title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def worst_confusion_figure(rates: np.ndarray, names: Sequence[str], model: str):
    """Heat map of :func:`.studies.worst_confusion`'s rates: each row is the share of one true breed's test
    images predicted as each shown breed (rows of the full row-normalised matrix, so a row sums to 1 only
    when all its errors fall on shown breeds)."""
    return plot_confusion(rates, names, normalize=False,
                          title=f"worst classes, {model}: share of each true breed's test images\n"
                                f"predicted as each shown breed (row-normalised over all classes)")
