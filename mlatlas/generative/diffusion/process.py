r"""The forward (noising) process, its posterior, and the loss that trains the reverse one.

Ho et al. (2020), "Denoising Diffusion Probabilistic Models":

    one step      q(x_t | x_{t-1}) = N(sqrt(α_t) x_{t-1}, β_t I)                       (eq. 2)
    closed form   q(x_t | x_0)     = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I)                      (eq. 4)
                  x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε,   ε ~ N(0, I)
    posterior     q(x_{t-1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I)                   (eqs. 6-7)
    simple loss   L_simple = E_{t, x_0, ε} || ε - ε_θ(sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, t) ||²
                                                                                      (eq. 14)

The closed form is what makes training cheap: any x_t is one draw away from x_0, with no
chain to run. L_simple is the variational bound with its per-step weights dropped; Ho et al.
found it gives better samples: relative to the bound it down-weights the small-t terms, the
easy task of removing very little noise, so the network spends itself on the harder ones.

A step index t runs over 0 .. T-1 as in `schedules` (index t is the paper's step t + 1).
Randomness comes from a torch.Generator passed in, so that a training loop that owns the
generator (`mlatlas.core.train.fit`, ``noise=``) resumes to the same draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mlatlas.generative.diffusion.schedules import Schedule

# eps_model(x_t, t) or eps_model(x_t, t, y): the network's estimate of the noise in x_t
EpsModel = Callable[..., Tensor]


def q_sample(sched: Schedule, x0: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """A draw of x_t ~ q(x_t | x_0), with its noise ε given (eq. 4)."""
    return (
        sched.at(sched.alpha_bar, t, x0).sqrt() * x0
        + (1 - sched.at(sched.alpha_bar, t, x0)).sqrt() * eps
    )


def q_step(sched: Schedule, x_prev: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """One step of the chain, x_t ~ q(x_t | x_{t-1}) (eq. 2): x_prev is the state before
    step t (the data x_0 for t = 0)."""
    beta = sched.at(sched.betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * eps


def predict_x0(sched: Schedule, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
    """Invert eq. 4 for x_0, given (an estimate of) the noise: (x_t − sqrt(1 − ᾱ_t) ε) /
    sqrt(ᾱ_t)."""
    ab = sched.at(sched.alpha_bar, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def q_posterior(sched: Schedule, x0: Tensor, x_t: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
    """Mean μ̃_t and variance β̃_t of q(x_{t-1} | x_t, x_0) (eqs. 6-7); the variance is
    returned shaped to broadcast over x_t. Both Gaussians in Bayes' rule are known, so the
    posterior is Gaussian in closed form: this is the target each reverse step imitates."""
    mean = sched.at(sched.posterior_mean_coef_x0, t, x_t) * x0 + (
        sched.at(sched.posterior_mean_coef_xt, t, x_t) * x_t
    )
    return mean, sched.at(sched.posterior_variance, t, x_t)


def draw_t_eps(sched: Schedule, x0: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A uniform step per example and the noise, drawn in that order from `generator` (on
    the generator's device, then moved), so that the same generator state gives the same
    draws on any device."""
    gdev = generator.device
    t = torch.randint(0, sched.T, (len(x0),), generator=generator, device=gdev)
    eps = torch.randn(x0.shape, generator=generator, device=gdev, dtype=x0.dtype)
    return t.to(x0.device), eps.to(x0.device)


def drop_labels(y: Tensor, null_class: int, p_uncond: float, generator: torch.Generator) -> Tensor:
    """Replace each label by the null class with probability p_uncond: one network then learns
    both ε(x, c) and ε(x, ∅), which classifier-free guidance needs (Ho & Salimans 2022)."""
    u = torch.rand(len(y), generator=generator, device=generator.device).to(y.device)
    return torch.where(u < p_uncond, torch.full_like(y, null_class), y)


def eps_loss(
    eps_model: EpsModel,
    sched: Schedule,
    x0: Tensor,
    generator: torch.Generator,
    y: Tensor | None = None,
    null_class: int | None = None,
    p_uncond: float = 0.0,
) -> Tensor:
    """L_simple of Ho et al. (2020), eq. 14: the mean squared error between the noise and the
    network's estimate of it, t ~ U{0..T−1} and ε ~ N(0, I) drawn from `generator`. With
    labels y, each is dropped to `null_class` with probability p_uncond (drawn after t and ε).
    The mean runs over every element, which is ||·||² over the batch divided by the dimension:
    the same minimiser."""
    t, eps = draw_t_eps(sched, x0, generator)
    x_t = q_sample(sched, x0, t, eps)
    if y is None:
        return (eps - eps_model(x_t, t)).pow(2).mean()
    if p_uncond > 0:
        if null_class is None:
            raise ValueError("p_uncond > 0 needs the null class to drop labels to")
        y = drop_labels(y, null_class, p_uncond, generator)
    return (eps - eps_model(x_t, t, y)).pow(2).mean()
