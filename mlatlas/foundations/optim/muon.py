"""Muon: momentum, then orthogonalise the update of each weight matrix (Jordan et al. 2024).

For a 2-D weight W with gradient G_t (PyTorch's conventions, so that a test can show
step-for-step equality with `torch.optim.Muon`):

    B_t = mu B_{t-1} + (1 - mu) G_t                       momentum (an exponential average)
    U_t = (1 - mu) G_t + mu B_t    (Nesterov)   or   U_t = B_t
    O_t = NS_k(U_t) ~ U V^T  where U_t = U S V^T          (Newton-Schulz, k steps)
    W  <- (1 - eta lambda) W - eta s O_t,   s = sqrt(max(1, rows / cols))

NS_k normalises X = U_t / ||U_t||_F (so every singular value is <= 1), then applies k times
the odd quintic X <- a X + (b A + c A^2) X with A = X X^T, which maps each singular value
sigma to a sigma + b sigma^3 + c sigma^5 and leaves the singular vectors alone. The
coefficients (a, b, c) = (3.4445, -4.7750, 2.0315) maximise the slope at zero, so small
singular values grow fast; after 5 steps they lie in roughly [0.7, 1.2] rather than exactly
at 1, which trains as well (Jordan et al. 2024). The iteration runs in bfloat16: it only
needs the singular values to land near 1.

Why: the update O_t has every singular value near 1, so the step changes W along all of its
directions by similar amounts; the gradient of a transformer's matrices is dominated by a
few directions, which plain momentum would follow almost alone. Muon is for the hidden
2-D matrices; embeddings, the output head, gains and biases stay with AdamW.

Sources: K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024
(kellerjordan.github.io/posts/muon); the `match_rms_adamw` scale 0.2 sqrt(max(rows, cols))
is from J. Liu et al., "Muon is Scalable for LLM Training", 2025.
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from mlatlas.foundations.optim.optimizers import Params

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(
    g: torch.Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """Approximately orthogonalise the matrix `g` (its zeroth power U V^T), in `dtype`.

    Works on the wide orientation (rows <= cols), so that A = X X^T is the smaller Gram matrix.
    """
    if g.dim() != 2:
        raise ValueError(f"Newton-Schulz needs a matrix, got shape {tuple(g.shape)}")
    a, b, c = coefficients
    tall = g.shape[0] > g.shape[1]
    x = g.to(dtype)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)  # ||X||_2 <= ||X||_F = 1: the iteration's domain
    for _ in range(steps):
        gram = x @ x.T  # A = X X^T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b A + c A^2
        x = torch.addmm(x, poly, x, beta=a)  # a X + (b A + c A^2) X
    return x.T if tall else x


def lr_scale(shape: torch.Size, rule: str | None) -> float:
    """The factor s on the learning rate of a (rows, cols) matrix.

    "original" (None): sqrt(max(1, rows/cols)) (Jordan et al. 2024); "match_rms_adamw":
    0.2 sqrt(max(rows, cols)), which gives the update AdamW's typical RMS (Liu et al. 2025).
    """
    rows, cols = shape[:2]
    if rule is None or rule == "original":
        return math.sqrt(max(1.0, rows / cols))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"unknown lr rule {rule!r}; known: original, match_rms_adamw")


class Muon(Optimizer):
    """Muon for 2-D parameters; see the module docstring for the update."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
    ) -> None:
        lr_scale(torch.Size((1, 1)), adjust_lr_fn)  # reject an unknown rule now, not at step 1
        defaults = dict(
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_coefficients=ns_coefficients,
            eps=eps,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"Muon takes 2-D parameters only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - mu)  # B <- mu B + (1 - mu) G
                u = g.lerp(buf, mu) if group["nesterov"] else buf  # (1 - mu) G + mu B
                o = newton_schulz(u, group["ns_steps"], group["ns_coefficients"], group["eps"])
                p.mul_(1 - lr * wd)  # decoupled weight decay, with the unscaled lr
                p.add_(o, alpha=-lr * lr_scale(p.shape, group["adjust_lr_fn"]))
        return loss
