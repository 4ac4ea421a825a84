"""Data the project generates itself: 2-D toy sets and 1-D target functions.

Every generator takes a NumPy Generator, so the same seed gives the same data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def ring_centres(k: int, radius: float) -> np.ndarray:
    """The (k, 2) centres of `gaussian_mixture_2d`: evenly spaced on a circle, the first at
    angle 0."""
    angles = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def gaussian_mixture_2d(
    n: int, k: int, rng: np.random.Generator, radius: float = 4.0, std: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """`k` isotropic Gaussians with centres evenly spaced on a circle; labels are the component.

    The GAN mode-collapse benchmark (Metz et al. 2017, "Unrolled generative adversarial
    networks"; Srivastava et al. 2017, VEEGAN) is the ring of k = 8 with radius 2 and
    std 0.02; the defaults here are a wider, blurrier ring for classifiers."""
    y = rng.integers(0, k, size=n)
    x = ring_centres(k, radius)[y] + std * rng.standard_normal((n, 2))
    return x, y.astype(np.int64)


def grid_centres(side: int, spacing: float) -> np.ndarray:
    """The (side * side, 2) centres of `gaussian_grid_2d`, row-major, centred at 0:
    side 5, spacing 2 gives every (i, j) with i, j in {-4, -2, 0, 2, 4}."""
    offsets = (np.arange(side) - (side - 1) / 2) * spacing
    xs, ys = np.meshgrid(offsets, offsets, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def gaussian_grid_2d(
    n: int, rng: np.random.Generator, side: int = 5, spacing: float = 2.0, std: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """A side x side grid of isotropic Gaussians of equal weight; labels are the component.

    The defaults are the benchmark of Srivastava et al. (2017, VEEGAN): 25 modes at
    {-4, -2, 0, 2, 4}^2 with std 0.05. Neighbouring modes lie 2 / 0.05 = 40 standard
    deviations apart, so a sample's nearest centre names its mode without doubt."""
    y = rng.integers(0, side * side, size=n)
    x = grid_centres(side, spacing)[y] + std * rng.standard_normal((n, 2))
    return x, y.astype(np.int64)


def two_spirals(
    n: int, rng: np.random.Generator, turns: float = 1.5, noise: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved Archimedean spirals r ~ theta, the second rotated by pi
    (Lang & Witbrock 1988)."""
    y = rng.integers(0, 2, size=n)
    theta = np.sqrt(rng.uniform(0, 1, size=n)) * turns * 2 * np.pi
    r = theta / (turns * 2 * np.pi) * 3.0
    phase = np.pi * y
    x = np.stack([r * np.cos(theta + phase), r * np.sin(theta + phase)], axis=1)
    return x + noise * rng.standard_normal((n, 2)), y.astype(np.int64)


def moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles."""
    y = rng.integers(0, 2, size=n)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(
        y[:, None] == 0,
        np.stack([np.cos(t), np.sin(t)], axis=1),
        np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1),
    )
    return x + noise * rng.standard_normal((n, 2)), y.astype(np.int64)


def tent(x: np.ndarray) -> np.ndarray:
    """The tent map on [0, 1]: 2x for x < 1/2, 2 - 2x otherwise."""
    return np.where(x < 0.5, 2 * x, 2 - 2 * x)


def tent_iterate(x: np.ndarray, k: int) -> np.ndarray:
    """tent applied k times: a sawtooth with 2^(k-1) teeth and 2^k linear pieces
    (Telgarsky 2016, 'Benefits of depth in neural networks')."""
    for _ in range(k):
        x = tent(x)
    return x


FUNCTIONS_1D: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # smooth with several frequencies: needs more hidden units the more wiggles it has
    "wiggle": lambda x: np.sin(3 * np.pi * x) + 0.5 * np.sin(7 * np.pi * x) + 0.3 * x,
    "step": lambda x: np.where(x < 0.0, -0.5, 0.5),
    "gaussian_bump": lambda x: np.exp(-((x - 0.2) ** 2) / 0.02),
    "abs": np.abs,
}


def function_1d(
    name: str, n: int, rng: np.random.Generator | None = None, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """`n` points of a named target on [-1, 1]: sorted uniform draws with `rng`, else a grid."""
    if name not in FUNCTIONS_1D:
        raise KeyError(f"unknown function {name!r}; known: {', '.join(FUNCTIONS_1D)}")
    x = np.sort(rng.uniform(-1, 1, size=n)) if rng is not None else np.linspace(-1, 1, n)
    y = FUNCTIONS_1D[name](x)
    if noise and rng is not None:
        y = y + noise * rng.standard_normal(n)
    return x, y


def adding_problem(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997): channel 0 holds U(0, 1) values,
    channel 1 marks two positions, one in each half of the sequence; the target is the sum
    of the two marked values. Predicting the mean, 1, scores MSE = Var = 2/12 = 0.1667."""
    values = rng.uniform(0, 1, (n, length))
    marks = np.zeros((n, length))
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)
    return x, y
