"""Figures built with matplotlib's object API (no pyplot, no global backend state)."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from mlatlas.core.fileio import atomic_save

# Stable SVG ids, so that the same run writes the same file.
mpl.rcParams["svg.hashsalt"] = "mlatlas"

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def new_figure(
    nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None
) -> tuple[Figure, np.ndarray]:
    """A figure and a 2-D array of axes; size defaults to 4.2 x 3.2 inches per panel."""
    size = size or (4.2 * ncols, 3.2 * nrows)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    return fig, axes


def save_figure(fig: Figure, stem: Path, dpi: int = 120) -> list[Path]:
    """Write `stem`.png and `stem`.svg; returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    # written whole or not at all: a kill mid-save leaves the previous file, not half a PNG
    atomic_save(png, lambda p: fig.savefig(p, format="png", dpi=dpi, metadata={"Software": None}))
    atomic_save(
        svg, lambda p: fig.savefig(p, format="svg", metadata={"Date": None, "Creator": None})
    )
    return [png, svg]
