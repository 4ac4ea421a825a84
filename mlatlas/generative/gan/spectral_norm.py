r"""Spectral normalization (Miyato et al. 2018, "Spectral normalization for generative
adversarial networks").

A layer's Lipschitz constant is the spectral norm sigma(W) of its weight, the largest
singular value; a ReLU / LeakyReLU network's constant is at most the product of its layers'.
Dividing every weight of the discriminator by its own spectral norm,

    W_SN = W / sigma(W),     sigma(W) = max_{h != 0} ||W h|| / ||h||,

makes each layer 1-Lipschitz, which bounds how sharply D can change, and so how large and
erratic the generator's gradients can be, with no penalty term and one matrix-vector product
pair per step.

sigma(W) comes from power iteration on vectors u (left) and v (right) that persist across
training steps: W changes little per step, so one iteration per forward pass keeps the
estimate close to the true value:

    u <- W v / ||W v||,     v <- W^T u / ||W^T u||,     sigma ~ u^T W v.

Miyato et al.'s Algorithm 1 writes the two half-steps starting from u; PyTorch's
`torch.nn.utils.parametrizations.spectral_norm` starts from v and keeps both vectors. The
iteration is the same; we follow PyTorch's order and state, so that the two agree number for
number (the test copies its u and v into ours). u and v are constants for the gradient (no
backward pass through the iteration), as in both.

A convolution's weight (out, in, kh, kw) is reshaped to (out, in * kh * kw), the matrix of
the map from one input patch to the output channels, as in the paper.

Here it is a parametrization (`torch.nn.utils.parametrize`): ``layer.weight`` is computed
from the stored ``original`` at each access, so one forward pass in training mode runs one
iteration. The vectors are buffers updated in the forward pass, so a spectrally normalized
network cannot be one member of a vmapped ensemble (`mlatlas.core.ensemble`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


def _normalize(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp_min(eps)  # eps: a zero vector stays zero instead of NaN


def power_iteration(
    w: Tensor, u: Tensor, v: Tensor, n: int, eps: float = 1e-12
) -> tuple[Tensor, Tensor]:
    """`n` steps of u <- W v / ||W v||, v <- W^T u / ||W^T u|| on a matrix W."""
    for _ in range(n):
        u = _normalize(w @ v, eps)
        v = _normalize(w.T @ u, eps)
    return u, v


class SpectralNorm(nn.Module):
    """The parametrization W -> W / sigma(W), sigma from persistent power iteration.

    `n_init` iterations at creation start the estimate near sigma(W) (PyTorch runs 15) instead
    of at a random vector's Rayleigh quotient."""

    def __init__(
        self, weight: Tensor, n_power_iterations: int = 1, eps: float = 1e-12, n_init: int = 15
    ) -> None:
        super().__init__()
        if weight.dim() < 2:
            raise ValueError("spectral normalization needs a weight of at least two dimensions")
        self.n_power_iterations, self.eps = n_power_iterations, eps
        w = weight.detach().flatten(1)
        u = _normalize(w.new_empty(w.shape[0]).normal_(), eps)
        v = _normalize(w.new_empty(w.shape[1]).normal_(), eps)
        u, v = power_iteration(w, u, v, n_init, eps)
        self.register_buffer("u", u)
        self.register_buffer("v", v)

    def sigma(self, weight: Tensor) -> Tensor:
        """The current estimate u^T W v of the largest singular value of `weight`."""
        return self.u @ weight.flatten(1) @ self.v

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            with torch.no_grad():
                # new tensors, not in-place updates: a graph built in an earlier forward pass
                # still holds the old u and v for its backward pass
                self.u, self.v = power_iteration(
                    weight.flatten(1), self.u, self.v, self.n_power_iterations, self.eps
                )
        return weight / self.sigma(weight)


def spectral_norm(
    module: nn.Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12
) -> nn.Module:
    """Register `SpectralNorm` on ``module.<name>`` (a Linear or Conv layer); returns it.

    The trained tensor becomes ``module.parametrizations.<name>.original``."""
    sn = SpectralNorm(getattr(module, name), n_power_iterations, eps)
    parametrize.register_parametrization(module, name, sn)
    return module
