r"""In-context learning of linear functions (Garg et al. 2022).

A task is a random linear function $f(x) = w^\top x$ with $w \sim \mathcal{N}(0, I_d)$; a
prompt is $k$ examples and a query, $(x_1, f(x_1), \dots, x_k, f(x_k), x_{k+1})$ with
$x_i \sim \mathcal{N}(0, I_d)$. A transformer trained on many such prompts, with no weight
update at test time, predicts $f(x_{k+1})$ from the prompt alone. Its error is compared with
estimators that see the same $k$ examples:

- least squares, $\hat w = X^{+} y$ (the Moore-Penrose pseudo-inverse: the minimum-norm
  solution when $k < d$). With Gaussian $w$ and no noise it is the Bayes-optimal predictor
  once $k \ge d$ (the error is then 0), and for $k < d$ it is the posterior mean;
- $k$-nearest neighbours: the mean of the $y_i$ of the 3 examples nearest to the query;
- averaging, $\hat w = \frac1k\sum_i y_i x_i$ (unbiased for $w$ since $E[xx^\top] = I$).

Errors are squared errors divided by $d$, so predicting 0 scores about 1 (Garg et al. 2022,
section 3). The model follows Garg et al.: a linear read-in of each token ($y_i$ padded with
zeros to $d$), a causal pre-LN transformer (topic 7's `Block`), learned positions and a
linear read-out at the positions of the $x$ tokens, trained on the squared error of every
prefix at once.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.transformers.models import Block


def sample_prompts(
    n: int, n_points: int, d: int, gen: torch.Generator, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` prompts of `n_points` examples each: xs (n, n_points, d) and ys = xs w (n, n_points)
    for one w ~ N(0, I) per prompt."""
    xs = torch.randn(n, n_points, d, generator=gen, dtype=dtype)
    w = torch.randn(n, d, 1, generator=gen, dtype=dtype)
    return xs, (xs @ w).squeeze(-1)


def interleave(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(x_1, (y_1, 0..0), x_2, (y_2, 0..0), ...): shape (n, 2 n_points, d)."""
    n, k, d = xs.shape
    y_tok = torch.zeros_like(xs)
    y_tok[..., 0] = ys
    return torch.stack([xs, y_tok], dim=2).reshape(n, 2 * k, d)


class InContextRegressor(nn.Module):
    """Causal transformer that reads a prompt and predicts y at every x position."""

    def __init__(self, d: int, n_points: int, n_embd: int, n_layer: int, n_head: int) -> None:
        super().__init__()
        self.read_in = nn.Linear(d, n_embd)
        self.pos = nn.Parameter(torch.randn(2 * n_points, n_embd) * 0.02)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln = nn.LayerNorm(n_embd)
        self.read_out = nn.Linear(n_embd, 1)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Prediction of y_{k+1} from the first k examples and x_{k+1}, for k = 0..n_points-1:
        shape (n, n_points). Causal attention keeps y_{k+1} out of its own prediction."""
        h = self.read_in(interleave(xs, ys))
        h = h + self.pos[: h.shape[1]]
        for block in self.blocks:
            h = block(h, causal=True)
        return self.read_out(self.ln(h))[:, ::2, 0]


# ------------------------------------------------------------------------------------------
# baselines: each maps (examples xs (n, k, d), ys (n, k), queries xq (n, d)) to (n,)
# ------------------------------------------------------------------------------------------


def least_squares(xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares, $\\hat w = X^+ y = V \\Sigma^{-1} U^\\top y$ over the
    singular values above the usual cut-off (max(k, d) * eps * largest, as numpy's lstsq)."""
    if xs.shape[1] == 0:
        return torch.zeros(xq.shape[0], dtype=xq.dtype, device=xq.device)
    u, s, vh = torch.linalg.svd(xs, full_matrices=False)
    cut = max(xs.shape[1:]) * torch.finfo(xs.dtype).eps * s[:, :1]
    inv = torch.where(s > cut, 1.0 / s, torch.zeros_like(s))
    w = vh.mT @ (inv * (u.mT @ ys.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
    return (xq.unsqueeze(1) @ w).reshape(-1)


def nearest_neighbours(
    xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, neighbours: int = 3
) -> torch.Tensor:
    """Mean y of the `neighbours` examples nearest to the query (Euclidean; all of them if
    there are fewer; 0 with no example)."""
    k = xs.shape[1]
    if k == 0:
        return torch.zeros(xq.shape[0], dtype=xq.dtype, device=xq.device)
    dist = (xs - xq.unsqueeze(1)).pow(2).sum(-1)
    idx = dist.topk(min(neighbours, k), dim=1, largest=False).indices
    return ys.gather(1, idx).mean(1)


def averaging(xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """$\\hat w = \\frac1k \\sum_i y_i x_i$, then $\\hat w^\\top x_q$ (0 with no example)."""
    if xs.shape[1] == 0:
        return torch.zeros(xq.shape[0], dtype=xq.dtype, device=xq.device)
    w = (ys.unsqueeze(-1) * xs).mean(1)
    return (w * xq).sum(-1)


BASELINES = {
    "least squares": least_squares,
    "3-nearest neighbours": nearest_neighbours,
    "averaging": averaging,
}


def baseline_errors(xs: torch.Tensor, ys: torch.Tensor, estimator) -> torch.Tensor:
    """Squared error / d of `estimator` at every prompt length: (n, n_points), column k using
    the first k examples to predict example k + 1."""
    _, n_points, d = xs.shape
    cols = [
        (estimator(xs[:, :k], ys[:, :k], xs[:, k]) - ys[:, k]).pow(2) / d for k in range(n_points)
    ]
    return torch.stack(cols, dim=1)
