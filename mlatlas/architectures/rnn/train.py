"""Models and training helpers shared by the labs of topic 6 (and usable by benchmarks).

* `SequenceRegressor`: a recurrent layer (PyTorch's fused kernel, or this topic's cells)
  read out linearly from its last hidden state, for the adding problem.
* `ElmanRegressor`: the same model for the tanh RNN, unrolled in Python with the input
  projection done once for all steps. Its state dict is `SequenceRegressor("rnn")`'s, and it
  runs inside `mlatlas.core.ensemble.Ensemble` (vmap), which PyTorch's fused kernel does not:
  five seeds then cost about what two cost one at a time.
* `clip_members_`: gradient-norm clipping per ensemble member. A global clip over an
  ensemble's stacked parameters would couple its members; clipping each member's own norm is
  exactly what `clip_grad_norm_` does to one model (``tests/test_rnn.py`` checks this).
* `ClipAdam`: Adam that clips before each step, so `mlatlas.core.train.fit` (which has no
  clipping hook) can train with clipping.
* `adding_set` / `adding_batches`: the adding problem's fixed held-out sets and per-member
  training streams.
* `flush_denormals`: a context in which the CPU flushes subnormal floats to zero. Vanishing
  gradients through time and saturated tanh units produce subnormal numbers, and CPU
  arithmetic on them is many times slower: a tanh RNN on the adding problem ran 2-5x slower
  per step without it. Values below 1.2e-38 (float32) become 0, which changes no result here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from mlatlas.architectures.rnn.cells import Recurrent, torch_equivalent
from mlatlas.core.data import adding_problem
from mlatlas.core.ensemble import clip_members_
from mlatlas.core.seeding import fixed_rng

ADDING_BASELINE = 1 / 6  # MSE of predicting the mean sum, 1 (Var of a sum of two U(0, 1))


class SequenceRegressor(nn.Module):
    """A recurrent layer read out linearly from its last hidden state."""

    def __init__(self, kind: str, n_in: int, hidden: int, ours: bool = False):
        super().__init__()
        self.rnn = Recurrent(kind, n_in, hidden) if ours else torch_equivalent(kind, n_in, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(h[:, -1])[:, 0]


class ElmanRegressor(SequenceRegressor):
    """`SequenceRegressor("rnn")` with the recurrence written out: h_t = tanh(W_i x_t + b_i +
    W_h h_{t-1} + b_h), h_0 = 0. Same parameters, same init, same outputs; vmap-able."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__("rnn", n_in, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.rnn
        inputs = (x @ r.weight_ih_l0.T + r.bias_ih_l0 + r.bias_hh_l0).unbind(-2)
        w_hh = r.weight_hh_l0.T
        h = torch.tanh(inputs[0])
        for x_t in inputs[1:]:
            h = torch.tanh(torch.addmm(x_t, h, w_hh))
        return self.out(h)[..., 0]


def scale_spectral_radius_(model: SequenceRegressor, radius: float) -> None:
    """Rescale W_hh in place so that its largest |eigenvalue| is `radius`."""
    with torch.no_grad():
        w = model.rnn.weight_hh_l0
        w.mul_(radius / torch.linalg.eigvals(w).abs().max())


class ClipAdam(torch.optim.Adam):
    """Adam that clips the gradient norm to `max_norm` before each step: the global norm of
    one model, or each member's norm when ``members=True`` (an `Ensemble`'s parameters).
    ``last_norms`` holds the norms before clipping."""

    def __init__(self, params, lr: float, max_norm: float, members: bool = False):
        super().__init__(params, lr=lr)
        self.max_norm, self.members = max_norm, members
        self.last_norms: torch.Tensor | None = None

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if self.members:
            self.last_norms = clip_members_(params, self.max_norm)
        else:
            self.last_norms = nn.utils.clip_grad_norm_(params, self.max_norm)
        return super().step(closure)


@torch.no_grad()
def member_mse(net: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> np.ndarray:
    """Mean squared error of a model (shape (1,)) or of each ensemble member (shape (R,)) on
    a held-out set, `chunk` sequences at a time to bound memory."""
    sq = [
        ((net(x[i : i + chunk]) - y[i : i + chunk]) ** 2).reshape(-1, len(y[i : i + chunk]))
        for i in range(0, len(x), chunk)
    ]
    return torch.cat(sq, dim=1).mean(1).double().cpu().numpy()


def adding_set(n: int, length: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out set ("val" or "test") of the adding problem: the same whatever --seed."""
    x, y = adding_problem(n, length, fixed_rng("adding", split, length))
    return torch.as_tensor(x), torch.as_tensor(y)


def adding_batches(
    rngs: Sequence[np.random.Generator], batch: int, length: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches, one stream per generator: x (B, T, 2) and y (B,) for one
    generator, stacked to (R, B, T, 2) and (R, B) for several (one per ensemble member)."""
    while True:
        xs, ys = zip(*(adding_problem(batch, length, g) for g in rngs), strict=True)
        if len(rngs) == 1:
            yield torch.as_tensor(xs[0]), torch.as_tensor(ys[0])
        else:
            yield torch.as_tensor(np.stack(xs)), torch.as_tensor(np.stack(ys))


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block (PyTorch's default, off, after it)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
