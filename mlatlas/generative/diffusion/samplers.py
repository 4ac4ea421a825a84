r"""The reverse process: DDPM's ancestral step, DDIM's step, and classifier-free guidance.

Both samplers first turn the network's noise estimate into an estimate of the data,
$\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta) / \sqrt{\bar\alpha_t}$, and then
step from $t$ to an earlier $t'$ ($t' = t - 1$, or the next step of a shorter subsequence).

**DDPM** (Ho et al. 2020, Algorithm 2) draws $x_{t'}$ from the posterior $q(x_{t'} \mid x_t,
\hat x_0)$: mean $\tilde\mu$ and variance $\sigma^2 = \tilde\beta$ ("small") or $\beta$
("large"; Ho et al. found both give similar samples). Between $t' < t$ the jump behaves as one
step with $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$, which is how a DDPM runs on a
subsequence of steps (Nichol & Dhariwal 2021, Sec. 4):

    x_{t'} = sqrt(ᾱ_{t'}) β / (1 - ᾱ_t) x̂_0 + sqrt(1 - β) (1 - ᾱ_{t'}) / (1 - ᾱ_t) x_t + σ z

**DDIM** (Song et al. 2021, eq. 12) uses a non-Markovian forward process with the same
marginals $q(x_t \mid x_0)$, hence the same trained network, and a free noise level:

    x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'} - σ²) ε_θ + σ z
    σ = η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'})                 (eq. 16)

$\eta = 0$ is deterministic (an ODE-like map from noise to data, which survives skipping
most steps); $\eta = 1$ makes $\sigma^2 = \tilde\beta$ and the step *is* DDPM's.

**Classifier-free guidance** (Ho & Salimans 2022, eq. 6) mixes the conditional and the
unconditional estimate of one network trained with labels dropped to a null class:

    ε̃ = (1 + w) ε_θ(x, c) - w ε_θ(x, ∅)

This module uses their $w$: $w = 0$ is the plain conditional model, $w > 0$ guides. Other
code (diffusers, Stable Diffusion) writes the same thing with $s = 1 + w$, $\tilde\epsilon =
\epsilon_\varnothing + s(\epsilon_c - \epsilon_\varnothing)$, where $s = 1$ is unguided.

Steps are indexed 0 .. T-1 as in `schedules`; $\bar\alpha$ before the first step is 1, so
the last step of a chain (to $t' = -1$) lands on $\hat x_0$ itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from mlatlas.generative.diffusion.process import EpsModel, predict_x0
from mlatlas.generative.diffusion.schedules import Schedule


def timestep_subsequence(T: int, steps: int, kind: str = "uniform") -> Tensor:
    """The steps a short sampler visits, in the order it visits them (descending).

    uniform: every (T // steps)-th step from 0, as in Song et al.'s code and diffusers'
    "leading" spacing; quadratic: floor of (linspace(0, sqrt(0.8 T), steps))², Song et al.'s
    choice for CIFAR-10, denser near t = 0 (repeated small steps are merged, so it may
    return fewer than `steps`)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if kind == "uniform":
        seq = torch.arange(steps) * (T // steps)
    elif kind == "quadratic":
        seq = torch.unique(
            (torch.linspace(0, (0.8 * T) ** 0.5, steps, dtype=torch.float64) ** 2).long()
        )
    else:
        raise ValueError(f"unknown kind {kind!r}; known: uniform, quadratic")
    return seq.flip(0)


def _alpha_bars(sched: Schedule, t: int, t_prev: int) -> tuple[float, float]:
    ab_prev = float(sched.alpha_bar[t_prev]) if t_prev >= 0 else 1.0
    return float(sched.alpha_bar[t]), ab_prev


def _x0_hat(sched: Schedule, x_t: Tensor, eps: Tensor, t: int, clip: float | None) -> Tensor:
    """x̂_0 from the noise estimate; clipping it to the data range (Ho et al.'s sampler does,
    for images in [-1, 1]) keeps early, poor estimates from throwing the chain off."""
    x0 = predict_x0(sched, x_t, t, eps)
    return x0 if clip is None else x0.clamp(-clip, clip)


def ddpm_step(
    sched: Schedule,
    x_t: Tensor,
    eps: Tensor,
    t: int,
    z: Tensor | None,
    t_prev: int | None = None,
    clip: float | None = None,
    variance: str = "small",
) -> Tensor:
    """One ancestral step x_t -> x_{t'} (t' = t − 1 unless given). z ~ N(0, I) is the fresh
    noise; the last step (t' = −1) adds none and returns the posterior mean."""
    t_prev = t - 1 if t_prev is None else t_prev
    ab, ab_prev = _alpha_bars(sched, t, t_prev)
    beta = 1 - ab / ab_prev  # the β of the jump t' -> t: β_t itself when t' = t − 1
    x0 = _x0_hat(sched, x_t, eps, t, clip)
    mean = (ab_prev**0.5 * beta / (1 - ab)) * x0 + (
        (1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)
    ) * x_t
    if t_prev < 0:
        return mean
    if variance == "small":
        var = (1 - ab_prev) / (1 - ab) * beta  # β̃: exact when x_0 is a point
    elif variance == "large":
        var = beta  # β: exact when x_0 ~ N(0, I)
    else:
        raise ValueError(f"unknown variance {variance!r}; known: small, large")
    if z is None:
        raise ValueError("a DDPM step before the last needs its noise z")
    return mean + var**0.5 * z


def ddim_sigma(sched: Schedule, t: int, t_prev: int, eta: float) -> float:
    """σ_t(η) of Song et al. (2021), eq. 16."""
    ab, ab_prev = _alpha_bars(sched, t, t_prev)
    return eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5


def ddim_step(
    sched: Schedule,
    x_t: Tensor,
    eps: Tensor,
    t: int,
    t_prev: int,
    eta: float = 0.0,
    z: Tensor | None = None,
    clip: float | None = None,
    rederive_eps: bool = True,
) -> Tensor:
    """One DDIM step x_t -> x_{t'} (eq. 12): the predicted x̂_0 moved to noise level t',
    plus the part of ε_θ the noise σ z does not replace.

    With `clip`, x̂_0 is clipped to [−clip, clip] and, by default, the noise is re-derived
    from it, ε̂ = (x_t − sqrt(ᾱ_t) x̂_0) / sqrt(1 − ᾱ_t), so the step is the DDIM step of
    the clipped estimate (as the DDIM sampler of Nichol & Dhariwal's guided-diffusion code
    does). ``rederive_eps=False`` keeps ε_θ beside the clipped x̂_0, as diffusers'
    `DDIMScheduler` with ``clip_sample`` does: the two halves of the update then disagree
    about x_0 wherever the clip acted, an error that a deterministic chain carries on."""
    ab, ab_prev = _alpha_bars(sched, t, t_prev)
    sigma = ddim_sigma(sched, t, t_prev, eta)
    x0 = _x0_hat(sched, x_t, eps, t, clip)
    if clip is not None and rederive_eps:
        eps = (x_t - ab**0.5 * x0) / (1 - ab) ** 0.5
    x = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0:
        if z is None:
            raise ValueError("a DDIM step with η > 0 needs its noise z")
        x = x + sigma * z
    return x


def guided_eps(
    model: EpsModel, x: Tensor, t: Tensor, y: Tensor | None, w: float, null_class: int | None
) -> Tensor:
    """ε̃ = (1 + w) ε(x, c) − w ε(x, ∅) (Ho & Salimans 2022); w = 0 (or no labels) is the
    plain model. Both estimates come from one forward pass over a doubled batch."""
    if y is None:
        return model(x, t)
    if w == 0:
        return model(x, t, y)
    if null_class is None:
        raise ValueError("guidance (w != 0) needs the null class")
    null = torch.full_like(y, null_class)
    e_c, e_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return (1 + w) * e_c - w * e_u


def _randn(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """N(0, I) drawn on the generator's device, then moved: the same draws on any device."""
    z = torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype)
    return z.to(like.device)


def reverse_process(
    model: EpsModel,
    sched: Schedule,
    x_T: Tensor,
    generator: torch.Generator,
    timesteps: Tensor | None = None,
    method: str = "ddpm",
    eta: float = 0.0,
    y: Tensor | None = None,
    w: float = 0.0,
    null_class: int | None = None,
    clip: float | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """Run the chain from x_T over `timesteps` (all T steps when None), yielding (t', x_{t'})
    after each step; the last has t' = −1 and is the sample. Noise is drawn from `generator`
    only where a step uses it: DDPM at every step but the last, DDIM at every step if η > 0."""
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"unknown method {method!r}; known: ddpm, ddim")
    seq = [int(s) for s in (torch.arange(sched.T).flip(0) if timesteps is None else timesteps)]
    x = x_T
    for i, t in enumerate(seq):
        t_prev = seq[i + 1] if i + 1 < len(seq) else -1
        tt = torch.full((len(x),), t, dtype=torch.long, device=x.device)
        eps = guided_eps(model, x, tt, y, w, null_class)
        if method == "ddpm":
            z = _randn(x.shape, generator, x) if t_prev >= 0 else None
            x = ddpm_step(sched, x, eps, t, z, t_prev, clip)
        else:
            z = _randn(x.shape, generator, x) if eta > 0 else None
            x = ddim_step(sched, x, eps, t, t_prev, eta, z, clip)
        yield t_prev, x


@torch.no_grad()
def sample(
    model: EpsModel,
    sched: Schedule,
    shape: tuple[int, ...],
    generator: torch.Generator,
    method: str = "ddpm",
    steps: int | None = None,
    eta: float = 0.0,
    y: Tensor | None = None,
    w: float = 0.0,
    null_class: int | None = None,
    clip: float | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Samples of the given shape: x_T ~ N(0, I) from `generator`, then the reverse chain
    over all T steps, or over `steps` uniformly spaced ones (DDIM's usual use)."""
    x = _randn(shape, generator, torch.empty(0, device=device))
    seq = None if steps is None else timestep_subsequence(sched.T, steps)
    for _, x_prev in reverse_process(
        model, sched, x, generator, seq, method, eta, y, w, null_class, clip
    ):
        x = x_prev  # only the chain's last state is kept
    return x
