"""Training helpers shared by the topics: MLPs, minibatches, accuracy, parameter counts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def make_mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers of the given sizes, `activation` between them, none after the last."""
    if activation not in ACTIVATION_MODULES:
        raise ValueError(f"unknown activation {activation!r}; known: {list(ACTIVATION_MODULES)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATION_MODULES[activation]())
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batches_for_steps(
    n: int, batch_size: int, steps: int, rng: np.random.Generator
) -> Iterator[torch.Tensor]:
    """Exactly `steps` minibatches of indices, reshuffling at each epoch boundary."""
    done = 0
    while done < steps:
        for idx in minibatches(n, batch_size, rng):
            if len(idx) < batch_size and n >= batch_size:
                continue  # keep every step the same size
            yield torch.from_numpy(idx)
            done += 1
            if done == steps:
                return


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one shuffled epoch in batches (the last one may be smaller)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def rmse(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int,
    rng: np.random.Generator,
    lr: float = 1e-3,
    on_step=None,
    schedule=None,
) -> nn.Module:
    """Adam on cross-entropy for `steps` minibatches; `schedule(t)` (if given) sets the lr
    before step t = 0, 1, ...; `on_step(step, loss)` runs after each step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step, idx in enumerate(batches_for_steps(len(x), batch_size, steps, rng), 1):
        if schedule is not None:
            for group in opt.param_groups:
                group["lr"] = schedule(step - 1)
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, loss.item())
    model.eval()
    return model
