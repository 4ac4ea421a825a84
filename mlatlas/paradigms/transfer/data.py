"""Source and target tasks built from one image set, and a shifted domain the project makes.

* `Task`: images of some classes of MNIST, Fashion-MNIST or scikit-learn's digits, relabelled
  0..k-1, flattened, with pixels in [0, 1] (standardise with the source's statistics).
* `few_shot`: k labelled examples per class, drawn per replicate.
* `textures` and `blend`: an MNIST-M-like target domain (Ganin & Lempitsky 2015 blended
  MNIST digits with colour patches of photographs, ``|digit - patch|``). Here the patches are
  smooth random gratings generated on the fly, so the shift needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mlatlas.core.data import REGISTRY, load_digits, load_fashion_mnist, load_mnist, record
from mlatlas.core.seeding import fixed_rng


@dataclass
class Task:
    x_train: torch.Tensor  # (N, D) in [0, 1]
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    side: int  # images are side x side
    record: dict[str, Any]

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max()) + 1


def _raw(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    if name == "digits":
        x, y = load_digits()
        x = x.reshape(len(x), -1) / 16.0
        order = fixed_rng("transfer", "digits-split").permutation(len(x))
        cut = int(0.75 * len(x))
        tr, te = order[:cut], order[cut:]
        return x[tr], y[tr], x[te], y[te], record("sklearn-digits")
    if name not in ("mnist", "fashion-mnist"):
        raise KeyError(f"unknown image set {name!r}; known: digits, mnist, fashion-mnist")
    load = load_mnist if name == "mnist" else load_fashion_mnist
    (xtr, ytr), (xte, yte) = load("train"), load("test")
    flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255.0  # noqa: E731
    return flat(xtr), ytr, flat(xte), yte, REGISTRY[name].record()


def task(name: str, classes: list[int], n_train: int | None = None) -> Task:
    """The images of `classes` (relabelled 0..len-1); an optional training subset, fixed
    whatever the run seed (drawn with `fixed_rng`)."""
    xtr, ytr, xte, yte, rec = _raw(name)
    relabel = {c: i for i, c in enumerate(classes)}

    def pick(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        keep = np.isin(y, classes)
        ys = np.array([relabel[int(c)] for c in y[keep]], dtype=np.int64)
        return torch.as_tensor(x[keep].astype(np.float32)), torch.as_tensor(ys)

    x_train, y_train = pick(xtr, ytr)
    x_test, y_test = pick(xte, yte)
    if n_train is not None and n_train < len(x_train):
        keep = fixed_rng("transfer", name, tuple(classes), n_train).choice(
            len(x_train), n_train, replace=False
        )
        x_train, y_train = x_train[np.sort(keep)], y_train[np.sort(keep)]
    side = round(x_train.shape[1] ** 0.5)
    rec = {**rec, "classes": classes, "n_train": len(x_train), "n_test": len(x_test)}
    return Task(x_train, y_train, x_test, y_test, side, rec)


def standardise(x: torch.Tensor, stats: tuple[float, float]) -> torch.Tensor:
    mean, std = stats
    return (x - mean) / std


def stats_of(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std())


def few_shot(y: torch.Tensor, k: int, rng: np.random.Generator) -> torch.Tensor:
    """Indices of `k` examples of each class of `y` (sorted by class), drawn by `rng`."""
    yn = y.cpu().numpy()
    picks = [rng.choice(np.flatnonzero(yn == c), k, replace=False) for c in np.unique(yn)]
    return torch.as_tensor(np.concatenate(picks))


def textures(
    n: int, side: int, rng: np.random.Generator, waves: int = 3, contrast: float = 1.0
) -> torch.Tensor:
    """`n` smooth random textures in [0, contrast], flattened: each `contrast` times the mean
    of `waves` random gratings 0.5 + 0.5 cos(2 pi (f . u) + phase), u the pixel position in
    [0, 1]^2."""
    u = np.stack(np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side)), -1)  # (s, s, 2)
    freq = rng.uniform(-4.0, 4.0, size=(n, waves, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(n, waves))
    arg = 2 * np.pi * np.einsum("ijk,nwk->nwij", u, freq) + phase[..., None, None]
    t = contrast * (0.5 + 0.5 * np.cos(arg)).mean(1)
    return torch.as_tensor(t.reshape(n, -1).astype(np.float32))


def blend(x: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
    """MNIST-M's rule on one channel: |x - texture|, pixels in [0, 1]; a stroke inverts
    the texture under it, so the digit is visible only as a change of the background."""
    return (x - texture).abs()
