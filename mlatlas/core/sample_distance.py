r"""Distances between two sample sets in low dimension: sliced Wasserstein and MMD.

For 2-D experiments (a diffusion model or a GAN fitted to a mixture of Gaussians) the samples
can be compared directly, with no feature extractor in between.

- **1-D Wasserstein-p** between empirical distributions is exact from the quantile functions
  (Villani 2009, Remark 2.30): $W_p^p(\mu, \nu) = \int_0^1 |F^{-1}(q) - G^{-1}(q)|^p\,dq$.
  The empirical quantile functions are step functions, constant between the breakpoints
  $\{i/n\} \cup \{j/m\}$, so the integral is a finite sum; with $n = m$ it is the mean of
  $|u_{(i)} - v_{(i)}|^p$ over the sorted samples.
- **Sliced Wasserstein-2** (Rabin et al. 2011; Bonneel et al. 2015) averages the 1-D distance
  over random directions $\theta$ uniform on the unit sphere:
  $SW_2^2(\mu, \nu) = \mathbb{E}_\theta\, W_2^2(\theta_\# \mu, \theta_\# \nu)$. It is a metric,
  costs a sort per direction, and for a pure shift $\delta$ equals $\lVert\delta\rVert^2 / d$.
- **MMD** with a Gaussian kernel $k(a, b) = \exp(-\lVert a - b\rVert^2 / 2h^2)$ (Gretton et al.
  2012): $\mathrm{MMD}^2 = \mathbb{E}\,k(x, x') + \mathbb{E}\,k(y, y') - 2\,\mathbb{E}\,k(x, y)$,
  zero iff the distributions are equal (the kernel is characteristic). The unbiased estimator
  (their Lemma 6) drops the diagonal terms $k(x_i, x_i)$; it can be slightly negative.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_CHUNK = 2048  # rows of a kernel matrix held at once


def _as_float64(x: Tensor | np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x)).double()


def wasserstein_1d(u: Tensor | np.ndarray, v: Tensor | np.ndarray, p: float = 2.0) -> float:
    """Exact $W_p$ between the empirical distributions of two 1-D samples (any sizes)."""
    a, b = torch.sort(_as_float64(u).ravel()).values, torch.sort(_as_float64(v).ravel()).values
    return float(_wasserstein_1d_pp(a[:, None], b[:, None], p).squeeze(0) ** (1.0 / p))


def _wasserstein_1d_pp(a: Tensor, b: Tensor, p: float) -> Tensor:
    """$W_p^p$ per column of sorted samples a (n, k) and b (m, k): the quantile functions are
    constant on each interval between consecutive breakpoints i/n and j/m."""
    n, m = len(a), len(b)
    if n == m:  # the breakpoints coincide: sorted pairing
        return (a - b).abs().pow(p).mean(0)
    f64 = torch.float64
    q = torch.cat([torch.arange(1, n + 1, dtype=f64) / n, torch.arange(1, m + 1, dtype=f64) / m])
    q = torch.cat([torch.zeros(1, dtype=f64), torch.unique(q)])  # i/n = j/m gives equal floats
    mid = (q[1:] + q[:-1]) / 2  # one point inside each interval picks both steps
    i = (mid * n).floor().long().clamp(max=n - 1)
    j = (mid * m).floor().long().clamp(max=m - 1)
    return ((a[i] - b[j]).abs().pow(p) * (q[1:] - q[:-1])[:, None]).sum(0)


def sliced_wasserstein(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    generator: torch.Generator,
    n_projections: int = 256,
    p: float = 2.0,
) -> float:
    """Sliced $W_p$ between (n, d) and (m, d) samples, Monte Carlo over `n_projections`
    directions drawn from `generator` (normalised Gaussians are uniform on the sphere)."""
    a, b = _as_float64(x), _as_float64(y)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) samples, got {tuple(a.shape)}, {tuple(b.shape)}")
    theta = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    pa, pb = torch.sort(a @ theta, dim=0).values, torch.sort(b @ theta, dim=0).values
    return float(_wasserstein_1d_pp(pa, pb, p).mean() ** (1.0 / p))


def median_bandwidth(x: Tensor | np.ndarray, y: Tensor | np.ndarray, n_max: int = 1000) -> float:
    """The median heuristic (Gretton et al. 2012, Sec. 8): h = the median distance between
    points of the pooled sample (its first `n_max` points, which keeps it cheap)."""
    z = torch.cat([_as_float64(x), _as_float64(y)])[:n_max]
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())


def _kernel_sum(a: Tensor, b: Tensor, h: float) -> Tensor:
    """$\\sum_{i,j} k(a_i, b_j)$, in row chunks so that no n x m matrix is held at once."""
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, len(a), _CHUNK):
        d2 = torch.cdist(a[i : i + _CHUNK], b).pow(2)
        total = total + torch.exp(-d2 / (2 * h * h)).sum()
    return total


def mmd2(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    bandwidth: float | None = None,
    unbiased: bool = True,
) -> float:
    """Squared MMD between (n, d) and (m, d) samples with a Gaussian kernel of width
    `bandwidth` (the median heuristic when None). unbiased=True is Gretton et al.'s
    $\\mathrm{MMD}_u^2$; False gives the biased V-statistic, which is zero for equal sets."""
    a, b = _as_float64(x), _as_float64(y)
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError(f"need at least 2 samples on each side, got {n} and {m}")
    h = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    kxx, kyy, kxy = _kernel_sum(a, a, h), _kernel_sum(b, b, h), _kernel_sum(a, b, h)
    if unbiased:  # k(x_i, x_i) = 1: removing the n diagonal terms removes the bias
        return float((kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2 * kxy / (n * m))
    return float(kxx / n**2 + kyy / m**2 - 2 * kxy / (n * m))
