"""Figures built with matplotlib's object API (no pyplot, no global backend state).

matplotlib is imported on the first figure, not with the package: it costs ~0.4 s, which
every command would pay, and most commands draw nothing."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlatlas.core.fileio import atomic_save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@cache
def _figure_class() -> type[Figure]:
    import matplotlib as mpl
    from matplotlib.figure import Figure

    mpl.rcParams["svg.hashsalt"] = "mlatlas"  # stable SVG ids: the same run, the same file
    return Figure


def new_figure(
    nrows: int = 1, ncols: int = 1, size: tuple[float, float] | None = None
) -> tuple[Figure, np.ndarray]:
    """A figure and a 2-D array of axes; size defaults to 4.2 x 3.2 inches per panel."""
    size = size or (4.2 * ncols, 3.2 * nrows)
    fig = _figure_class()(figsize=size, layout="constrained")
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


def image_grid(ax, images: np.ndarray, side: int, ncol: int = 8, title: str = "") -> None:
    """Draw images (n, side * side) or (n, side, side), values in [0, 1], as one tiled grid on
    `ax` (white lines between tiles, no ticks): how samples of a generator are shown."""
    x = np.asarray(images, dtype=np.float64).reshape(-1, side, side)
    nrow = -(-len(x) // ncol)
    canvas = np.ones((nrow * (side + 1) + 1, ncol * (side + 1) + 1))
    for i, im in enumerate(x):
        r, c = divmod(i, ncol)
        canvas[1 + r * (side + 1) : (r + 1) * (side + 1), 1 + c * (side + 1) :][:, :side] = im
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)
