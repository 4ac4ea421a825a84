r"""Score matching and Langevin dynamics: generating from $\nabla_x \log p(x)$ alone.

**Denoising score matching** (Vincent 2011). The score of the data is unknown, but the score
of a Gaussian corruption $\tilde x = x + \sigma z$ given $x$ is not:
$\nabla_{\tilde x} \log q_\sigma(\tilde x \mid x) = -(\tilde x - x)/\sigma^2 = -z/\sigma$.
Regressing on it,

    ℓ(θ; σ) = 1/2 E_{x, z} || s_θ(x + σ z, σ) + z / σ ||²,

has the same minimiser as regressing on the score of the noised marginal $q_\sigma(\tilde x)$,
so $s_\theta \to \nabla \log q_\sigma$, which for small $\sigma$ is nearly the data's score.

**Many noise levels** (Song & Ermon 2019, NCSN). One small $\sigma$ leaves the score
unlearned where the data has no mass, and that is where sampling starts. A geometric sequence
$\sigma_1 > \dots > \sigma_L$ and one network conditioned on the level, trained on
$\frac{1}{L}\sum_i \sigma_i^2\,\ell(\theta; \sigma_i)$ (the weight $\sigma^2$ makes every
term of the same order, since $\lVert z/\sigma\rVert^2 \propto 1/\sigma^2$).

**Langevin dynamics** samples from $p$ with its score only (Parisi 1981; Grenander & Miller
1994): $x \leftarrow x + \frac{\epsilon}{2}\nabla_x \log p(x) + \sqrt{\epsilon}\,z$, exact as
$\epsilon \to 0$ and the number of steps grows. **Annealed** Langevin (Song & Ermon 2019,
Algorithm 1) runs $T$ steps at each level from $\sigma_1$ down, with step $\alpha_i =
\epsilon\,\sigma_i^2 / \sigma_L^2$ so that the signal-to-noise ratio of a step is the same
at every level.

The link to DDPM: $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$ has
$\nabla \log q(x_t \mid x_0) = -\epsilon / \sqrt{1 - \bar\alpha_t}$, so an ε-network is a
score network up to that scale, and $L_\text{simple}$ is denoising score matching over the
schedule's noise levels (Ho et al. 2020, Sec. 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from mlatlas.generative.diffusion.schedules import Schedule

# score_model(x, i): the estimated score at noise level sigmas[i], i a (B,) index tensor
ScoreModel = Callable[[Tensor, Tensor], Tensor]


def geometric_sigmas(sigma_max: float, sigma_min: float, L: int) -> Tensor:
    """σ_1 > ... > σ_L, a geometric sequence (Song & Ermon 2019 use 1 to 0.01, L = 10, for
    images in [0, 1]); σ_1 should be about the largest distance between data points."""
    return torch.logspace(math.log10(sigma_max), math.log10(sigma_min), L, dtype=torch.float64)


def dsm_loss(
    score_model: ScoreModel, x: Tensor, sigmas: Tensor, generator: torch.Generator
) -> Tensor:
    """(1/L) Σ_i σ_i² ℓ(θ; σ_i), estimated with one level i ~ U{0..L−1} and one z ~ N(0, I)
    per example, drawn in that order from `generator`. One σ (a 1-element `sigmas`) is
    Vincent's loss times σ²."""
    gdev = generator.device
    i = torch.randint(0, len(sigmas), (len(x),), generator=generator, device=gdev).to(x.device)
    z = torch.randn(x.shape, generator=generator, device=gdev, dtype=x.dtype).to(x.device)
    sigma = sigmas.to(x.device, x.dtype)[i].reshape((-1,) + (1,) * (x.ndim - 1))
    residual = score_model(x + sigma * z, i) + z / sigma
    # σ² ||s + z/σ||² = ||σ s + z||²: the same, with no 1/σ to blow up at small σ
    return 0.5 * (sigma**2 * residual.pow(2)).flatten(1).sum(1).mean()


def langevin(
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator,
) -> Tensor:
    """n_steps of unadjusted Langevin dynamics from x with a fixed step ε. Its stationary law
    is p only as ε -> 0 (no Metropolis correction): for a Gaussian of variance v the chain
    settles at variance v / (1 − ε / 4v)."""
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
        x = x + step_size / 2 * score(x) + step_size**0.5 * z.to(x.device)
    return x


@torch.no_grad()
def annealed_langevin(
    score_model: ScoreModel,
    x: Tensor,
    sigmas: Tensor,
    generator: torch.Generator,
    eps: float = 2e-5,
    n_steps: int = 100,
    denoise: bool = False,
) -> Tensor:
    """Song & Ermon (2019), Algorithm 1 (ε = 2e-5, T = 100 there): n_steps at each level with
    α_i = ε σ_i² / σ_L². With denoise, a last step x + σ_L² s(x, σ_L) removes the noise of
    level σ_L: the posterior mean E[x | x̃] by Tweedie's formula (Efron 2011), which
    Jolicoeur-Martineau et al. (2021) found to improve samples markedly."""
    sigma_L = float(sigmas[-1])
    for i, sigma in enumerate(sigmas.tolist()):
        idx = torch.full((len(x),), i, dtype=torch.long, device=x.device)
        alpha = eps * sigma**2 / sigma_L**2
        x = langevin(lambda u, idx=idx: score_model(u, idx), x, alpha, n_steps, generator)
    if denoise:
        idx = torch.full((len(x),), len(sigmas) - 1, dtype=torch.long, device=x.device)
        x = x + sigma_L**2 * score_model(x, idx)
    return x


def score_from_eps(sched: Schedule, eps: Tensor, t: Tensor | int) -> Tensor:
    """The score of q(x_t) that an ε-network implies: −ε_θ / sqrt(1 − ᾱ_t)."""
    return -eps / (1 - sched.at(sched.alpha_bar, t, eps)).sqrt()


def mixture_score(x: Tensor, means: Tensor, weights: Tensor, var: float | Tensor) -> Tensor:
    """∇_x log Σ_k w_k N(x; μ_k, var·I), in closed form: Σ_k r_k(x) (μ_k − x) / var with
    responsibilities r_k = softmax_k(log w_k − ||x − μ_k||² / 2 var). The mixture smoothed by
    noise of level σ (what a score network at level σ estimates) has var = s² + σ² for
    components of variance s²."""
    d2 = (x[:, None, :] - means[None]).pow(2).sum(-1)  # (B, K)
    r = torch.softmax(weights.log()[None] - d2 / (2 * var), dim=1)
    return (r[:, :, None] * (means[None] - x[:, None, :])).sum(1) / var


def mode_share(x: Tensor, means: Tensor, k: int = 0) -> float:
    """The share of samples whose nearest mean is means[k]."""
    return float(((x[:, None, :] - means[None]).pow(2).sum(-1).argmin(1) == k).double().mean())
