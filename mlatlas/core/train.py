"""Training helpers shared by the topics: the minibatch loop, MLPs, minibatches, accuracy.

`fit` is the one training loop of the labs: minibatches, an optional schedule, a progress bar
and metrics through the lab context, divergence detection, early stop, and batched ensembles
(a loss of shape (R,) trains R replicates at once, see `mlatlas.core.ensemble`). Loops that
*are* a lesson (gradient clipping, the engine-equals-torch comparison) stay in their labs.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mlatlas.core.ensemble import Ensemble

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


@dataclass
class FitResult:
    """What `fit` saw: per-step losses (steps x R for an ensemble), which runs diverged, and
    the number of steps taken."""

    losses: np.ndarray
    diverged: np.ndarray  # bool per replicate (shape () for a single model)
    steps: int
    stopped_early: bool = False

    @property
    def final_loss(self) -> np.ndarray:
        return self.losses[-1] if len(self.losses) else np.full(self.diverged.shape, np.nan)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    steps: int,
    *,
    ctx: Any = None,
    desc: str = "train",
    schedule: Callable[[int], float] | None = None,
    log_every: int = 0,
    on_step: Callable[[int, np.ndarray], bool | None] | None = None,
) -> FitResult:
    """Minimise ``loss_fn(model, batch)`` over the first `steps` batches.

    loss_fn returns a scalar, or a vector of R per-replicate losses (their sum is
    back-propagated: replicates sharing no parameter get their own gradients).
    schedule(t) sets every group's lr before step t = 0, 1, ...; ctx (a `Lab`) gives the
    progress bar and logs the mean loss every `log_every` steps; ``on_step(step, losses)``
    runs after each step (1-based) and may return True to stop. A single model whose loss
    turns non-finite stops and is marked diverged; an ensemble keeps training the others.
    """
    model.train()
    it = iter(batches)
    # One preallocated array, not a list of per-step arrays: thousands of tiny allocations
    # between the step's large activation buffers fragment the heap (GBs of peak RSS).
    losses: np.ndarray | None = None
    done = 0
    diverged: np.ndarray | None = None
    stopped = False
    # vmap'd ensembles leave reference cycles behind each step (about 1 MB each); collecting
    # every 100 steps keeps their memory flat at a cost of milliseconds.
    collect = isinstance(model, Ensemble)
    bar = ctx.progress(range(steps), desc=desc) if ctx is not None else range(steps)
    for t in bar:
        if schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = schedule(t)
        batch = next(it)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.sum().backward()
        optimizer.step()
        value = loss.detach().double().cpu().numpy()
        if losses is None:
            losses = np.empty((steps, *value.shape))
        losses[done] = value
        done += 1
        bad = ~np.isfinite(value)
        diverged = bad if diverged is None else (diverged | bad)
        if collect and (t + 1) % 100 == 0:
            gc.collect()
        if ctx is not None and log_every and (t + 1) % log_every == 0:
            ctx.log(step=t + 1, loss=float(np.nanmean(value)) if not bad.all() else float("nan"))
        if on_step is not None and on_step(t + 1, value):
            stopped = True
            break
        if diverged.all():
            break
    model.eval()
    if losses is None:
        return FitResult(np.empty((0,)), np.zeros((), dtype=bool), 0, stopped)
    return FitResult(losses[:done].copy(), diverged.astype(bool), done, stopped)


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int,
    rng: np.random.Generator,
    lr: float = 1e-3,
    on_step: Callable[[int, float], None] | None = None,
    schedule: Callable[[int], float] | None = None,
    ctx: Any = None,
) -> nn.Module:
    """Adam on cross-entropy for `steps` minibatches (a thin use of `fit`);
    ``on_step(step, loss)`` runs after each step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    def hook(step: int, loss: np.ndarray) -> None:
        if on_step is not None:
            on_step(step, float(loss))

    fit(
        model,
        opt,
        loss_fn,
        batches_for_steps(len(x), batch_size, steps, rng),
        steps,
        ctx=ctx,
        schedule=schedule,
        on_step=hook,
    )
    return model
