"""Replicates of a small MLP trained as one: weights stacked on a leading replicate axis.

R copies of an `nn.Sequential` MLP (Linear layers with element-wise activations between them,
as `mlatlas.core.train.make_mlp` builds) become one module whose layer l holds a weight of
shape (R, in, out), so a forward pass is one batched matmul per layer. The copies share no
parameter, so the gradient of the *sum* of their losses with respect to copy r is copy r's
own gradient, and Adam (element-wise) on the stacked tensors performs exactly R independent
runs (``tests/test_backprop.py`` checks this against separate training).

`mlatlas.core.ensemble.Ensemble` does the same for any module through ``vmap``; for the tiny
1-D regressors of this topic's labs the plain batched matmul measured 1.5-3x faster per step
on a 2-core CPU (3x for the narrow deep nets of `why_depth`, least for the widest shallow
ones), which is what makes five seeds per arm affordable.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from mlatlas.core.train import FitResult, fit


class StackedMLP(nn.Module):
    """R MLPs with the same shape: ``forward(x)`` maps (R, B, in) or shared (B, in) to
    (R, B, out)."""

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a stack needs at least one model")
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        self.size = len(models)
        self.template = copy.deepcopy(models[0])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach().T for ls in linears]).contiguous())
            for i in range(len(linears[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach()[None] for ls in linears]))
            for i in range(len(linears[0]))
        )
        # the element-wise module after each Linear but the last (ReLU, Tanh, ...)
        mods = list(models[0])
        self.acts = [mods[j + 1] for j, m in enumerate(mods[:-1]) if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(self.size, *x.shape) if x.dim() == 2 else x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.acts):
                h = self.acts[i](h)
        return h

    def member(self, r: int) -> nn.Sequential:
        """Member `r` as a standalone `nn.Sequential` (a copy of its current weights)."""
        model = copy.deepcopy(self.template)
        with torch.no_grad():
            lins = [m for m in model if isinstance(m, nn.Linear)]
            for lin, w, b in zip(lins, self.weights, self.biases, strict=True):
                lin.weight.copy_(w[r].T)
                lin.bias.copy_(b[r, 0])
        return model


def cosine(lr: float, steps: int, floor: float = 0.0) -> Callable[[int], float]:
    """The learning rate of `torch.optim.lr_scheduler.CosineAnnealingLR` at step t."""
    return lambda t: floor + (lr - floor) * (1 + math.cos(math.pi * t / steps)) / 2


def train_regression(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    *,
    floor: float = 0.0,
    ctx=None,
    desc: str = "train",
) -> FitResult:
    """Full-batch Adam with cosine decay (to `floor`) on each member's mean squared error;
    `x`, `y` of shape (R, n, ·): each member fits its own sample."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss_fn(m: nn.Module, _: object) -> torch.Tensor:
        return ((m(x) - y) ** 2).mean(dim=(1, 2))

    return fit(
        model,
        opt,
        loss_fn,
        itertools.repeat(None),
        steps,
        ctx=ctx,
        desc=desc,
        schedule=cosine(lr, steps, floor),
    )
