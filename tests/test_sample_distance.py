"""The 2-D sample distances against references: 1-D W1 equal to scipy's (exact, any sizes),
1-D W2 against the Gaussians' closed form, sliced W2 against the closed form of a shift,
MMD² against a direct double loop; all are zero on identical sets and grow with a shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlatlas.core import sample_distance
from mlatlas.core.sample_distance import (
    median_bandwidth,
    mmd2,
    sliced_wasserstein,
    wasserstein_1d,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are small: with two threads on a shared machine each elementwise op waits
    for a busy core (measured: 200 steps of the chain in 1.4 s against 0.24 s on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), m=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_w1_equals_scipy_for_any_sizes(n, m, seed):
    """The quantile-function sum is exact: it equals scipy's CDF-difference integral."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=n), rng.normal(0.5, 2.0, size=m)
    assert wasserstein_1d(u, v, p=1) == pytest.approx(
        stats.wasserstein_distance(u, v), rel=1e-10, abs=1e-12
    )


def test_w2_of_equal_sizes_is_the_sorted_pairing_and_handles_ties():
    u = np.array([3.0, 1.0, 2.0, 2.0])
    v = np.array([0.0, 5.0, 2.0, 1.0])
    direct = np.sqrt(np.mean((np.sort(u) - np.sort(v)) ** 2))
    assert wasserstein_1d(u, v) == pytest.approx(direct, rel=1e-12)
    # a set against itself repeated twice is the same distribution: distance 0
    assert wasserstein_1d(u, np.concatenate([u, u])) == pytest.approx(0.0, abs=1e-12)


def test_w2_of_two_gaussians_matches_the_closed_form():
    """W2²(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)². Estimated from 20,000 and
    30,000 draws (unequal, so the interpolating branch runs): within 0.03 of the exact
    W2 = sqrt(1.5² + 1²) = 1.803 (the estimate's sd at this size is about 0.01)."""
    rng = np.random.default_rng(0)
    u, v = rng.normal(0.0, 1.0, 20_000), rng.normal(1.5, 2.0, 30_000)
    assert wasserstein_1d(u, v) == pytest.approx(np.hypot(1.5, 1.0), abs=0.03)


def test_sliced_w2_of_a_shift_is_its_norm_over_sqrt_d():
    """Same law shifted by δ: every direction θ sees a shift θ·δ, and E[(θ·δ)²] = |δ|²/d on
    the unit sphere. With the same samples shifted the 1-D distances are exact, so only the
    Monte Carlo over 4,000 directions remains: in 3-D, cos(θ, δ) is uniform on [-1, 1], so
    (θ·δ)² has relative sd sqrt(4/45)·3 = 0.89 and the mean of 4,000 has 1.4%; tolerance 5%."""
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    delta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    sw = sliced_wasserstein(x, x + delta, g, n_projections=4000)
    assert sw**2 == pytest.approx(float(delta @ delta) / 3, rel=0.05)
    assert sliced_wasserstein(x, x, g) == 0.0
    with pytest.raises(ValueError, match="samples"):
        sliced_wasserstein(x, x[:, :2], g)


def test_sliced_w2_is_reproducible_from_the_generator_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(400, 2))
    a = sliced_wasserstein(x, y, torch.Generator().manual_seed(7))
    b = sliced_wasserstein(x, y, torch.Generator().manual_seed(7))
    assert a == b
    d = [sliced_wasserstein(x, y + s, torch.Generator().manual_seed(7)) for s in (0, 1, 2, 4)]
    assert d == sorted(d) and d[-1] > 10 * d[0]


def _mmd2_loop(x: np.ndarray, y: np.ndarray, h: float) -> tuple[float, float]:
    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * h * h))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    unbiased = xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)
    biased = (xx + n) / n**2 + (yy + m) / m**2 - 2 * xy / (n * m)
    return unbiased, biased


def test_mmd2_equals_a_direct_double_loop(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(23, 2)), rng.normal(0.3, 1.2, size=(17, 2))
    u, b = _mmd2_loop(x, y, 0.8)
    assert mmd2(x, y, 0.8) == pytest.approx(u, rel=1e-10)
    assert mmd2(x, y, 0.8, unbiased=False) == pytest.approx(b, rel=1e-10)
    monkeypatch.setattr(sample_distance, "_CHUNK", 5)  # kernel rows in chunks that do not divide
    assert mmd2(x, y, 0.8) == pytest.approx(u, rel=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        mmd2(x[:1], y)


def test_mmd2_is_zero_on_identical_sets_and_grows_with_a_shift():
    """The biased statistic is exactly 0 for equal sets. The unbiased one drops the diagonal
    of k(x, x) but not of k(x, y): with A the off-diagonal sum it is 2A/(n²(n − 1)) − 2/n,
    in [−2/n, 0] since 0 <= A <= n(n − 1)."""
    x = np.random.default_rng(5).normal(size=(400, 2))
    assert mmd2(x, x, 1.0, unbiased=False) == pytest.approx(0.0, abs=1e-12)
    assert -2 / 400 <= mmd2(x, x, 1.0) <= 0
    d = [mmd2(x, x + np.array([s, 0.0]), 1.0) for s in (0.0, 0.25, 0.5, 1.0)]
    assert d == sorted(d) and d[-1] > 0.1


def test_mmd2_unbiased_has_mean_zero_between_samples_of_one_law():
    """Over 40 pairs of independent samples of one Gaussian the mean of MMD²_u is 0 within
    4 standard errors; the biased V-statistic is positive every time."""
    rng = np.random.default_rng(6)
    pairs = [(rng.normal(size=(60, 2)), rng.normal(size=(60, 2))) for _ in range(40)]
    u = np.array([mmd2(a, b, 1.0) for a, b in pairs])
    assert abs(u.mean()) < 4 * u.std(ddof=1) / np.sqrt(len(u))
    assert all(mmd2(a, b, 1.0, unbiased=False) > 0 for a, b in pairs)


def test_median_bandwidth_is_the_median_pairwise_distance():
    x, y = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[6.0, 8.0]])
    assert median_bandwidth(x, y) == pytest.approx(5.0)  # distances 5, 10, 5
