r"""Elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting
in neural networks").

After task A, each parameter's importance is the diagonal of the Fisher information at the
learned weights $\theta^*_A$,

$$F_i = \mathbb{E}_{x \sim D_A}\, \mathbb{E}_{y \sim p_{\theta^*_A}(y \mid x)}
\Big[\Big(\frac{\partial \log p_\theta(y \mid x)}{\partial \theta_i}
\Big|_{\theta=\theta^*_A}\Big)^2\Big],$$

a Laplace approximation of the posterior after A. Training on task B then minimises

$$L(\theta) = L_B(\theta) + \frac{\lambda}{2} \sum_i F_i\, (\theta_i - \theta^*_{A,i})^2,$$

so weights that mattered for A are held near their old values and the others are free.
The inner expectation over $y$ is computed exactly (a sum over the classes weighted by the
model's probabilities); ``labels`` gives the "empirical Fisher" with the true labels instead
(Martens 2020 discusses why the two differ).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap


def fisher_diagonal(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor | None = None,
    names: Iterable[str] | None = None,
    output: slice = slice(None),
    chunk: int = 64,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the softmax over ``model(x)[..., output]`` for the parameters in
    `names` (default: all), averaged over the examples of `x`.

    Per-example gradients of every class's log-probability come from ``vmap(jacrev(...))``;
    with `labels`, only the labelled class's (the empirical Fisher)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    keep = list(params) if names is None else list(names)
    fixed = {k: v for k, v in params.items() if k not in keep}

    def log_probs(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        z = functional_call(model, ({**fixed, **p}, buffers), (xi.unsqueeze(0),))[0, output]
        return torch.log_softmax(z, -1)

    jac = vmap(jacrev(log_probs), in_dims=(None, 0))  # per example: class x parameter shape
    total = {k: torch.zeros_like(params[k]) for k in keep}
    trained = {k: params[k] for k in keep}
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        with torch.no_grad():
            lp = vmap(log_probs, in_dims=(None, 0))(trained, xb)  # (b, C)
        g = jac(trained, xb)
        if labels is None:
            w = lp.exp()  # E_{y ~ p}: each class weighted by its probability
        else:
            w = nn.functional.one_hot(labels[i : i + chunk], lp.shape[-1]).to(lp.dtype)
        for k in keep:
            sq = g[k].pow(2)  # (b, C, *shape)
            total[k] += torch.einsum("bc,bc...->...", w, sq)
    return {k: v / len(x) for k, v in total.items()}


def ewc_penalty(
    params: dict[str, torch.Tensor],
    anchor: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor],
    per_member: bool = False,
) -> torch.Tensor:
    """(1/2) sum_i F_i (theta_i - theta*_i)^2 over the parameters in `fisher`; multiply by
    lambda outside. per_member: tensors have a leading member axis (a batched ensemble) and
    the result has one penalty per member."""
    terms = []
    for k, f in fisher.items():
        d = (f * (params[k] - anchor[k]).pow(2)).flatten(1 if per_member else 0)
        terms.append(d.sum(-1))
    return 0.5 * torch.stack(terms).sum(0)
