"""Image data for topic 5: digits, MNIST and Fashion-MNIST as (N, 1, 28, 28) tensors, and
translations of them.

Used by the labs, by `benchmarks/mnist_time_to_99.py`, and importable by other topics.
"""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core.data import Split, image_classification


def images(name: str, rng: np.random.Generator, n_train: int | None = None) -> Split:
    """Image tensors (N, 1, 28, 28); digits' 8x8 images are upsampled to 28x28. `rng` draws
    the digits train/test split and any training subset (pass `fixed_rng(...)` to keep them
    the same whatever the run seed)."""
    return image_classification(name, rng, n_train=n_train, flatten=False, size=28)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate images by (dy, dx) pixels, filling with the background value (the minimum)."""
    out = torch.full_like(x, x.min().item())
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out
