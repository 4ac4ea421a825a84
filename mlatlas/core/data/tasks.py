"""Ready-to-train tensors for the tasks labs share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mlatlas.core.data.loaders import load_digits, load_fashion_mnist, load_mnist
from mlatlas.core.data.registry import REGISTRY

IMAGE_SETS = ("digits", "mnist", "fashion-mnist")


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    shape: tuple[int, ...]  # one example's shape before flattening
    record: dict[str, Any]


def image_classification(
    name: str,
    rng: np.random.Generator,
    n_train: int | None = None,
    n_test: int | None = None,
    flatten: bool = True,
    size: int | None = None,
) -> Split:
    """digits (scikit-learn, 8x8, split 75/25 here), mnist or fashion-mnist (28x28), as float32
    tensors standardised with the training set's mean and std; optional random subsets.
    flatten=False gives (N, 1, H, W); `size` resizes the images to size x size (bilinear)."""
    if name == "digits":
        x, y = load_digits()
        x = x.reshape(-1, 8, 8)
        order = rng.permutation(len(x))
        cut = int(0.75 * len(x))
        xtr, ytr, xte, yte = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
        from importlib.metadata import version

        rec = {"name": "sklearn-digits", "source": f"scikit-learn {version('scikit-learn')}"}
    elif name in ("mnist", "fashion-mnist"):
        load = load_mnist if name == "mnist" else load_fashion_mnist
        (xtr, ytr), (xte, yte) = load("train"), load("test")
        rec = REGISTRY[name].record()
    else:
        raise KeyError(f"unknown image set {name!r}; known: {', '.join(IMAGE_SETS)}")
    if n_train is not None and n_train < len(xtr):
        keep = rng.choice(len(xtr), n_train, replace=False)
        xtr, ytr = xtr[keep], ytr[keep]
    if n_test is not None and n_test < len(xte):
        keep = rng.choice(len(xte), n_test, replace=False)
        xte, yte = xte[keep], yte[keep]
    xtr = xtr.astype(np.float32)
    xte = xte.astype(np.float32)
    mean, std = xtr.mean(), xtr.std()
    shape = tuple(xtr.shape[1:])

    def prep(a: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor((a - mean) / std)  # on the lab's device (no copy on the CPU)
        return t.reshape(len(a), -1) if flatten else t.unsqueeze(1)

    rec = {**rec, "n_train": len(xtr), "n_test": len(xte)}
    x_train, x_test = prep(xtr), prep(xte)
    if size is not None and not flatten and size != shape[-1]:
        resize = torch.nn.functional.interpolate
        x_train = resize(x_train, size=(size, size), mode="bilinear", antialias=size < shape[-1])
        x_test = resize(x_test, size=(size, size), mode="bilinear", antialias=size < shape[-1])
        shape = (size, size)
        rec["resized_to"] = size
    return Split(
        x_train,
        torch.as_tensor(ytr.astype(np.int64)),
        x_test,
        torch.as_tensor(yte.astype(np.int64)),
        int(max(ytr.max(), yte.max()) + 1),
        shape,
        rec,
    )
