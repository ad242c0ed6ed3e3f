"""Figures: drawn with matplotlib (the ``report`` extra) into PNGs without metadata, so
that the same inputs give the same bytes."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .document import Rendering, figure_keys


def pyplot():
    """matplotlib's pyplot on the Agg backend (ImportError without matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def draw(out_dir: Path, docs, rendering: Rendering) -> list[str]:
    """Draw every figure the documents use, once each, into ``out_dir``; the paths
    written, relative to the documents."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = figure_keys(docs)
    unknown = [key for key in keys if key not in rendering.figures]
    if unknown:
        raise KeyError(f"the documents use figures nobody draws: {', '.join(unknown)}; "
                       f"known: {', '.join(rendering.figures) or 'none'}")
    for key in keys:
        rendering.figures[key](out_dir / f"{key}.png", rendering)
    return [f"figures/{key}.png" for key in keys]


def error_plot(path: Path, xs, errors: dict, series, xlabel: str, ylabel: str, logx: bool = False,
               bound: float = 4.0) -> None:
    """Worst errors in ULPs (log scale) against ``xs``, one line per ``(key, label)`` of
    ``series`` (``errors[key]`` its values); infinite or NaN errors at 1e18."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=130)
    cap = 1e18
    for (name, label), marker in zip(series, ("x", "s", "o", "^", "v", "d")):
        ys = np.array([min(e, cap) if math.isfinite(e) else cap for e in errors[name]])
        ax.plot(xs, np.maximum(ys, 1e-2), marker=marker, label=label, linewidth=1.4, markersize=5)
    ax.axhline(bound, color="gray", linestyle="--", linewidth=0.8)
    ax.text(xs[0], bound * 1.5, f"contract: {bound:g} ULP", fontsize=9, color="gray")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(1e-2, cap * 10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", linewidth=0.3)
    ax.legend(fontsize=9, loc="center left")
    ax.set_title("infinite or NaN results are plotted at $10^{18}$", fontsize=9, color="gray", loc="right")
    save(plt, fig, path)
