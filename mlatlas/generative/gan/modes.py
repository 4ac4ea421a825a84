r"""Mode collapse on a mixture with known modes (Srivastava et al. 2017, VEEGAN).

On a Gaussian mixture whose centres mu_1..mu_K and standard deviation s are known (the ring
and the grid of `mlatlas.core.data.synthetic`), every generated sample x is assigned to its
nearest centre k(x) = argmin_k ||x - mu_k||, and

* x is **high quality** when ||x - mu_k(x)|| <= 3 s (VEEGAN: "within three standard
  deviations of the nearest mode"). For an isotropic 2-D Gaussian the distance over s is
  chi-distributed with 2 degrees of freedom, so a true sample is high quality with probability
  1 - exp(-9/2) = 0.989;
* a mode is **covered** when at least `min_count` high-quality samples are assigned to it.
  VEEGAN's rule, the default, is min_count = 1: "the number of mixture components whose mean
  is nearest to at least one high quality sample", on 2,500 samples. A stricter count (a
  share of the n / K samples a mode expects) tells a mode barely touched from one covered.

Reported: modes covered (out of K) and the share of high-quality samples. Collapse shows in the
first, blur and samples between modes in the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mlatlas.core.data.synthetic import (
    gaussian_grid_2d,
    gaussian_mixture_2d,
    grid_centres,
    ring_centres,
)

VEEGAN_SAMPLES = 2500  # samples drawn per evaluated generator in Srivastava et al. (2017)


@dataclass(frozen=True)
class Mixture:
    """One of the two benchmark mixtures: its name, (K, 2) centres and standard deviation."""

    name: str
    centres: np.ndarray
    std: float

    @property
    def modes(self) -> int:
        return len(self.centres)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points (n, 2), float32, drawn by the core's generator of this mixture."""
        if self.name == "ring":
            x, _ = gaussian_mixture_2d(n, self.modes, rng, radius=2.0, std=self.std)
        else:
            x, _ = gaussian_grid_2d(n, rng, side=5, spacing=2.0, std=self.std)
        return x.astype(np.float32)


# Metz et al. (2017) and Srivastava et al. (2017): 8 modes on a circle of radius 2 with std
# 0.02; 25 modes at {-4, -2, 0, 2, 4}^2 with std 0.05
MIXTURES = {
    "ring": Mixture("ring", ring_centres(8, 2.0), 0.02),
    "grid": Mixture("grid", grid_centres(5, 2.0), 0.05),
}


@dataclass(frozen=True)
class ModeCoverage:
    """covered: modes with >= min_count high-quality samples; high_quality: their share of all
    samples; counts: high-quality samples per mode (K,); nearest: each sample's mode (n,)."""

    covered: int
    high_quality: float
    counts: np.ndarray
    nearest: np.ndarray

    @property
    def modes(self) -> int:
        return len(self.counts)


def mode_coverage(
    samples: Tensor | np.ndarray,
    centres: Tensor | np.ndarray,
    std: float,
    n_std: float = 3.0,
    min_count: int = 1,
) -> ModeCoverage:
    """VEEGAN's mode-collapse statistics of (n, d) samples for (K, d) known centres."""
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    mu = torch.as_tensor(np.asarray(centres), dtype=torch.float64)
    if x.dim() != 2 or mu.dim() != 2 or x.shape[1] != mu.shape[1] or len(x) == 0:
        raise ValueError(f"need (n, d) samples and (K, d) centres, got {x.shape}, {mu.shape}")
    # the direct difference, not the |x|^2 + |mu|^2 - 2 x.mu expansion: a sample on the 3 s
    # boundary is then judged the same way as by a loop over the centres
    dist, nearest = torch.cdist(x, mu, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    good = (dist <= n_std * std).numpy()
    nearest_np = nearest.numpy()
    counts = np.bincount(nearest_np[good], minlength=len(mu))
    return ModeCoverage(
        covered=int((counts >= min_count).sum()),
        high_quality=float(good.mean()),
        counts=counts,
        nearest=nearest_np,
    )


def member_coverage(
    samples: Tensor | np.ndarray,
    centres: Tensor | np.ndarray,
    std: float,
    diverged: np.ndarray | None = None,
    min_count: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Modes covered and high-quality share of each of R generators' samples (R, n, d), as
    two float arrays (R,). A member that diverged, or whose samples are not all finite, gets
    NaN in both: it is a failure for the claims to count, never a generator that happened to
    cover no mode."""
    x = np.asarray(samples, dtype=np.float64)
    failed = np.zeros(len(x), dtype=bool) if diverged is None else np.asarray(diverged, bool)
    failed = np.broadcast_to(failed, (len(x),))
    covered, quality = np.full(len(x), np.nan), np.full(len(x), np.nan)
    for r, xr in enumerate(x):
        if failed[r] or not np.isfinite(xr).all():
            continue
        c = mode_coverage(xr, centres, std, min_count=min_count)
        covered[r], quality[r] = c.covered, c.high_quality
    return covered, quality
