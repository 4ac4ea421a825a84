"""Training helpers shared by the labs of topic 5: a classifier trained with `core.train.fit`,
R small models trained at once as a batched ensemble with a batch stream each, and the MLP
with as many parameters as a given CNN.

Batch orders come from the caller's generators (a replicate's ``rng("batches")``), so the two
arms of a paired comparison can see the same stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.train import FitResult, batches_for_steps, fit, make_mlp


def equal_params_mlp(n_params: int, n_classes: int, n_inputs: int = 28 * 28) -> nn.Module:
    """Flatten, then one hidden ReLU layer sized so the MLP has about `n_params` parameters:
    h (n_inputs + 1) + (h + 1) n_classes = n_params."""
    hidden = round((n_params - n_classes) / (n_inputs + 1 + n_classes))
    return nn.Sequential(nn.Flatten(), make_mlp([n_inputs, hidden, n_classes]))


@torch.no_grad()
def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """Per example: 1.0 where the model's top class is the label, else 0.0."""
    model.eval()
    out = [model(x[i : i + batch]).argmax(-1) == y[i : i + batch] for i in range(0, len(x), batch)]
    return torch.cat(out).double()


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch: int,
    rng: np.random.Generator,
    lr: float = 1e-3,
    schedule: Callable[[int], float] | None = None,
    ctx=None,
    desc: str = "train",
) -> FitResult:
    """Adam on cross-entropy for `steps` minibatches drawn by `rng`."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    batches = batches_for_steps(len(x), batch, steps, rng)
    return fit(
        model, opt, loss_fn, batches, steps, ctx=ctx, desc=desc, schedule=schedule, log_every=100
    )


def train_ensemble(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch: int,
    rngs: Sequence[np.random.Generator],
    lr: float = 1e-3,
    ctx=None,
    desc: str = "train",
) -> tuple[Ensemble, FitResult]:
    """Member r trained on its own batch stream ``rngs[r]``: exactly R independent Adam runs
    (no BatchNorm allowed). Returns the ensemble and the (steps x R) losses."""
    if len(models) != len(rngs):
        raise ValueError("one batch generator per member")
    ens = Ensemble(models)
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    streams = [batches_for_steps(len(x), batch, steps, g) for g in rngs]
    batches = (torch.stack(idx) for idx in zip(*streams, strict=True))  # (R, B)

    def loss_fn(m: Ensemble, idx: torch.Tensor) -> torch.Tensor:
        logits = m(x[idx], per_member=True)  # (R, B, C)
        ce = nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none")
        return ce.view(idx.shape).mean(1)

    return ens, fit(ens, opt, loss_fn, batches, steps, ctx=ctx, desc=desc, log_every=100)
