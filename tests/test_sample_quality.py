"""The sample-quality yardstick's statistics against references: the Fréchet distance against
the closed form with `scipy.linalg.sqrtm`, k-NN radii against scikit-learn's NearestNeighbors,
precision and recall against a direct double loop, and the property they exist for: dropping
modes costs recall, not precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg
from sklearn.neighbors import NearestNeighbors

from mlatlas.core import sample_quality
from mlatlas.core.sample_quality import (
    class_coverage,
    feature_statistics,
    frechet_distance,
    frechet_distance_of,
    knn_radii,
    precision_recall,
)


def _frechet_scipy(mu1, s1, mu2, s2) -> float:
    """The closed form as usually computed: a general matrix square root of s1 @ s2."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d) + 1e-3 * np.eye(d)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 24), seed=st.integers(0, 10_000))
def test_frechet_distance_equals_the_closed_form_with_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_frechet_scipy(mu1, s1, mu2, s2), rel=1e-6, abs=1e-8)
    assert ours == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-6, abs=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_shifted_features_is_the_squared_shift():
    """Same covariance, means apart by delta: the trace terms cancel and d^2 = |delta|^2."""
    x = np.random.default_rng(0).normal(size=(500, 8))
    delta = np.arange(8) / 4.0
    assert frechet_distance_of(x, x + delta) == pytest.approx(float(delta @ delta), rel=1e-9)
    mu, sigma = feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.T), rtol=1e-12)
    with pytest.raises(ValueError, match="feature matrix"):
        feature_statistics(x[:1])


def test_knn_radii_equal_scikit_learns_nearest_neighbours():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    nn = NearestNeighbors(n_neighbors=4).fit(x.numpy())
    dist, _ = nn.kneighbors(x.numpy())  # column 0 is the point itself
    np.testing.assert_allclose(knn_radii(x, 3).numpy(), dist[:, 3], rtol=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        knn_radii(x[:3], 3)


def test_precision_and_recall_equal_a_direct_loop(monkeypatch):
    rng = np.random.default_rng(2)
    real, gen = rng.normal(size=(60, 3)), rng.normal(0.5, 1.2, size=(50, 3))

    def radius(ref, i, k=3):
        return np.sort(np.linalg.norm(ref - ref[i], axis=1))[k]  # index 0 is ref[i] itself

    def share_inside(points, ref):
        radii = [radius(ref, j) for j in range(len(ref))]
        hits = [
            any(np.linalg.norm(p - ref[j]) <= radii[j] for j in range(len(ref))) for p in points
        ]
        return sum(hits) / len(points)

    p, r = precision_recall(real, gen)
    assert p == pytest.approx(share_inside(gen, real))
    assert r == pytest.approx(share_inside(real, gen))
    monkeypatch.setattr(sample_quality, "_CHUNK", 7)  # distance rows in chunks that do not divide n
    assert precision_recall(real, gen) == (p, r)


def test_dropping_modes_costs_recall_and_keeps_precision():
    """Real data: a ring of 8 Gaussians (the GAN labs' target). A generator that covers 4 of
    the modes keeps precision near 1 and has recall near 1/2; one that covers all 8 has both
    near 1 (the k-NN balls of one sample do not cover every point of another: about 0.97)."""
    rng = np.random.default_rng(3)
    angle = np.arange(8) * 2 * np.pi / 8
    centres = 10.0 * np.stack([np.cos(angle), np.sin(angle)], 1)
    real = np.concatenate([c + 0.5 * rng.normal(size=(250, 2)) for c in centres])
    full = np.concatenate([c + 0.5 * rng.normal(size=(250, 2)) for c in centres])
    half = np.concatenate([c + 0.5 * rng.normal(size=(500, 2)) for c in centres[:4]])
    p_full, r_full = precision_recall(real, full)
    p_half, r_half = precision_recall(real, half)
    assert p_full > 0.9 and r_full > 0.9
    assert p_half > 0.9 and 0.4 < r_half < 0.6
    assert frechet_distance_of(real, half) > 100 * frechet_distance_of(real, full)


def test_class_coverage_counts_shares_and_confidence():
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1]])
    c = class_coverage(probs, 3)
    assert c["share"] == [0.75, 0.25, 0.0]
    assert c["classes_present"] == 2
    assert c["max_deviation_from_uniform"] == pytest.approx(0.75 - 1 / 3)
    assert c["mean_confidence"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4)
    with pytest.raises(ValueError, match="probabilities"):
        class_coverage(probs, 4)
