r"""Noise schedules: the $\beta_t$ of the forward process and everything derived from them.

The forward process adds Gaussian noise in $T$ steps, $q(x_t \mid x_{t-1}) =
\mathcal{N}(\sqrt{1 - \beta_t}\,x_{t-1}, \beta_t I)$. With $\alpha_t = 1 - \beta_t$ and
$\bar\alpha_t = \prod_{s \le t} \alpha_s$ (Ho et al. 2020):

    q(x_t | x_0)           = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I)
    SNR(t)                 = ᾱ_t / (1 - ᾱ_t)                 (Kingma et al. 2021)
    q(x_{t-1} | x_t, x_0)  = N(μ̃_t, β̃_t I),
        μ̃_t = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) x_0 + sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t) x_t
        β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t

Two schedules:

- **linear** (Ho et al. 2020): $\beta_t$ from $10^{-4}$ to $0.02$ over $T = 1000$ steps.
- **cosine** (Nichol & Dhariwal 2021): $\bar\alpha_t = f(t)/f(0)$ with
  $f(t) = \cos^2\!\big(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\big)$, $s = 0.008$, and
  $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}$ clipped at 0.999. Under the linear
  schedule $\bar\alpha_t$ is near zero well before $T$ (below 0.01 from $t \approx 670$
  on), so the last steps see almost pure noise and add little to sample quality (Nichol &
  Dhariwal 2021, Sec. 3.2); the cosine schedule lowers $\bar\alpha_t$ more evenly.

Indexing: arrays have length $T$ and index $t = 0, \dots, T-1$ stands for the paper's step
$t + 1$ (as in Ho et al.'s code and in diffusers), so ``alpha_bar[t]`` is the signal left
after $t + 1$ noising steps and ``alpha_bar[-1]`` is the last. $\bar\alpha$ before the first
step is 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def linear_betas(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:
    """Ho et al. (2020): $\\beta_t$ evenly spaced from beta_1 to beta_T (float64)."""
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def cosine_alpha_bar(t: Tensor, T: int, s: float = 0.008) -> Tensor:
    """Nichol & Dhariwal (2021), eq. 17: $\\bar\\alpha(t) = f(t)/f(0)$ for continuous t in
    [0, T]. The offset s keeps $\\beta$ from being vanishingly small near t = 0, where the
    network would otherwise have to predict noise far smaller than a pixel's quantisation."""

    def f(u: Tensor) -> Tensor:
        return torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

    return f(t.double()) / f(torch.zeros((), dtype=torch.float64))


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """$\\beta_t = 1 - \\bar\\alpha(t)/\\bar\\alpha(t-1)$, clipped at max_beta: $\\bar\\alpha(T)
    = 0$ would make the last $\\beta$ exactly 1 and the reverse step divide by zero."""
    steps = torch.arange(T + 1, dtype=torch.float64)
    ab = cosine_alpha_bar(steps, T, s)
    return (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)


@dataclass(frozen=True)
class Schedule:
    """The quantities of a schedule, as (T,) float64 tensors indexed t = 0 .. T-1."""

    betas: Tensor
    alphas: Tensor
    alpha_bar: Tensor
    alpha_bar_prev: Tensor  # ᾱ_{t-1}, with ᾱ before the first step = 1
    posterior_variance: Tensor  # β̃_t; zero at t = 0, where x_0 is known given x_1
    posterior_mean_coef_x0: Tensor
    posterior_mean_coef_xt: Tensor

    @property
    def T(self) -> int:
        return len(self.betas)

    def snr(self) -> Tensor:
        """SNR(t) = ᾱ_t / (1 − ᾱ_t), strictly decreasing in t."""
        return self.alpha_bar / (1 - self.alpha_bar)

    def at(self, values: Tensor, t: Tensor | int, like: Tensor) -> Tensor:
        """values[t] in like's dtype and device, shaped to broadcast over like: t may be an
        int (one step for the whole batch) or a (B,) tensor (a step per example)."""
        v = values.to(like.device)[torch.as_tensor(t, device=like.device)].to(like.dtype)
        return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def make_schedule(betas: Tensor) -> Schedule:
    """All derived quantities from the betas, in float64 (ᾱ_t of T = 1000 steps is a product
    of 1000 factors: float32 would lose digits that the last steps need)."""
    betas = betas.double()
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    return Schedule(
        betas=betas,
        alphas=alphas,
        alpha_bar=alpha_bar,
        alpha_bar_prev=alpha_bar_prev,
        posterior_variance=(1 - alpha_bar_prev) / (1 - alpha_bar) * betas,
        posterior_mean_coef_x0=alpha_bar_prev.sqrt() * betas / (1 - alpha_bar),
        posterior_mean_coef_xt=alphas.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar),
    )


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
    return make_schedule(linear_betas(T, beta_1, beta_T))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    return make_schedule(cosine_betas(T, s, max_beta))


def near_noise_share(sched: Schedule, log_snr: float = -5.0) -> float:
    """The share of the schedule's steps with log SNR(t) below `log_snr`: steps where x_t
    keeps less than sqrt(ᾱ_t) ≈ exp(log_snr / 2) of the data's amplitude (0.08 at −5), and
    which a sampler spends on what is almost pure noise (Nichol & Dhariwal 2021, Sec. 3.2)."""
    return float((sched.snr().log() < log_snr).double().mean())
