"""Sample quality in a feature space: Fréchet distance, precision and recall, class coverage.

A generator is scored by comparing features of its samples with features of real data. With
Inception-v3 features the Fréchet distance is FID (Heusel et al. 2017); those weights cannot be
had here, so the generative topics use the penultimate features of a classifier they train
themselves, and must name the score as such ("Fréchet distance in MNIST-classifier features"),
never as FID: the numbers are not comparable with published FIDs.

- Fréchet distance between the Gaussians fitted to the two feature sets (Fréchet 1957; Dowson &
  Landau 1982): $d^2 = \\lVert\\mu_r - \\mu_g\\rVert^2 + \\mathrm{Tr}(\\Sigma_r + \\Sigma_g
  - 2(\\Sigma_r\\Sigma_g)^{1/2})$.
- Precision and recall of distributions (Kynkäänniemi et al. 2019): a sample is on the real
  manifold when it lies within the k-NN radius of some real feature; precision is the share of
  generated samples on the real manifold (quality), recall the share of real samples on the
  generated manifold (coverage). A generator that drops modes keeps its precision and loses
  recall; one that blurs keeps recall and loses precision; the Fréchet distance mixes the two.
- Class coverage and confidence: the share of each class among the classifier's labels for the
  samples, and its mean top-class probability.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof = 1) of an (n, d) feature matrix, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need an (n >= 2, d) feature matrix, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(
    mu_r: np.ndarray, sigma_r: np.ndarray, mu_g: np.ndarray, sigma_g: np.ndarray
) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu_r, sigma_r) and N(mu_g, sigma_g).

    $\\mathrm{Tr}(\\Sigma_r\\Sigma_g)^{1/2}$ is taken as $\\mathrm{Tr}(A^{1/2})$ with the
    symmetric $A = \\Sigma_r^{1/2}\\Sigma_g\\Sigma_r^{1/2}$, which has the same eigenvalues as
    $\\Sigma_r\\Sigma_g$: two symmetric eigendecompositions instead of a general matrix square
    root, so no complex parts appear from round-off. Eigenvalues below zero are round-off of a
    PSD matrix and are clipped."""
    mu_r, mu_g = np.asarray(mu_r, np.float64), np.asarray(mu_g, np.float64)
    sigma_r, sigma_g = np.asarray(sigma_r, np.float64), np.asarray(sigma_g, np.float64)
    if mu_r.shape != mu_g.shape or sigma_r.shape != sigma_g.shape:
        raise ValueError(
            f"shapes differ: {mu_r.shape}/{mu_g.shape}, {sigma_r.shape}/{sigma_g.shape}"
        )
    w, v = np.linalg.eigh((sigma_r + sigma_r.T) / 2)
    root_r = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # Sigma_r^{1/2}
    a = root_r @ sigma_g @ root_r
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((a + a.T) / 2), 0.0, None)).sum()
    diff = mu_r - mu_g
    return float(diff @ diff + np.trace(sigma_r) + np.trace(sigma_g) - 2.0 * trace_sqrt)


def frechet_distance_of(real: Tensor | np.ndarray, generated: Tensor | np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two (n, d) feature matrices."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(generated))


_CHUNK = 2048  # rows of a distance matrix held at once: 2048 x 10,000 float64 is 160 MB


def knn_radii(features: Tensor, k: int = 3) -> Tensor:
    """Distance from each feature to its k-th nearest other feature (itself excluded)."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in [1, {len(features) - 1}], got {k}")
    # the (k+1)-th smallest distance is the k-th other point's: d(x, x) = 0 comes first
    return torch.cat(
        [
            torch.cdist(features[i : i + _CHUNK], features).kthvalue(k + 1, dim=1).values
            for i in range(0, len(features), _CHUNK)
        ]
    )


def manifold_coverage(points: Tensor, reference: Tensor, k: int = 3) -> float:
    """Share of `points` inside the union of balls of k-NN radius around each `reference`
    feature: $\\frac{1}{n}\\sum_i [\\exists j: \\lVert p_i - r_j\\rVert \\le
    \\mathrm{NN}_k(r_j)]$."""
    radii = knn_radii(reference, k)[None, :]
    inside = sum(
        int((torch.cdist(points[i : i + _CHUNK], reference) <= radii).any(dim=1).sum())
        for i in range(0, len(points), _CHUNK)
    )
    return inside / len(points)


def precision_recall(
    real: Tensor | np.ndarray, generated: Tensor | np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, k = 3 as there): precision is
    the share of generated features on the real manifold, recall the share of real features on
    the generated manifold."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    g = torch.as_tensor(np.asarray(generated), dtype=torch.float64)
    return manifold_coverage(g, r, k), manifold_coverage(r, g, k)


def class_coverage(probs: Tensor | np.ndarray, n_classes: int) -> dict[str, object]:
    """From a classifier's class probabilities (n, C) for generated samples: the share of each
    class among the argmax labels, the number of classes that appear at all, the largest
    deviation from uniform shares, and the mean top-class probability."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"need (n, {n_classes}) probabilities, got shape {p.shape}")
    share = np.bincount(p.argmax(1), minlength=n_classes) / len(p)
    return {
        "share": share.tolist(),
        "classes_present": int((share > 0).sum()),
        "max_deviation_from_uniform": float(np.abs(share - 1.0 / n_classes).max()),
        "mean_confidence": float(p.max(1).mean()),
    }
