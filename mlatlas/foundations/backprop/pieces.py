"""Counting the linear pieces of a sampled piecewise-linear function.

A ReLU network is piecewise linear; the number of its pieces is what depth buys (Montufar et
al. 2014). On a grid fine enough that every kink lies on a grid point, the pieces are
1 + the number of slope changes between neighbouring intervals.
"""

from __future__ import annotations

import numpy as np


def count_linear_pieces(y: np.ndarray, x: np.ndarray, tol: float = 1e-6) -> int:
    """Linear pieces of a function sampled as y(x): 1 + the number of slope changes larger
    than `tol` relative to the steepest slope (relative, so that the count does not depend
    on the function's scale)."""
    slopes = np.diff(y) / np.diff(x)
    return 1 + int(np.sum(np.abs(np.diff(slopes)) > tol * max(1.0, np.abs(slopes).max())))
