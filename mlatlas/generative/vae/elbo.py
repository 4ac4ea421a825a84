r"""The evidence lower bound, its analytic KL term, and the importance-weighted bound.

A VAE (Kingma & Welling 2014) models $p_\theta(x, z) = p_\theta(x \mid z)\,\mathcal N(z; 0, I)$
and fits an encoder
$q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$.
For any $q$, Jensen's inequality gives the ELBO:

$$\log p_\theta(x) \ge \mathbb E_{q}[\log p_\theta(x \mid z)]
  - \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z)) = \mathcal L_1,$$

the first term the (negative) *distortion*, the second the *rate* (Alemi et al. 2018). The KL
between two diagonal Gaussians has a closed form, so only the reconstruction term is sampled:

$$\mathrm{KL}(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1))
  = \tfrac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - \log \sigma_j^2 - 1\right).$$

The importance-weighted bound (Burda et al. 2015) averages $k$ importance weights
$w_i = p_\theta(x, z_i) / q_\phi(z_i \mid x)$ inside the log:

$$\mathcal L_k = \mathbb E_{z_{1..k} \sim q}\Big[\log \tfrac1k \textstyle\sum_i w_i\Big],
  \qquad \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p_\theta(x),$$

and $\mathcal L_k \to \log p_\theta(x)$ as $k \to \infty$; $-\mathcal L_{5000}$ is the test
negative log-likelihood that Burda et al. (and most papers since) report.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension (same shape as mu)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def log_normal(z: Tensor, mu: Tensor | float = 0.0, logvar: Tensor | float = 0.0) -> Tensor:
    """log N(z; mu, exp(logvar)), summed over the last axis."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | z) = sum_i x_i log p_i + (1 - x_i) log(1 - p_i) with p = sigmoid(logits),
    summed over the last axis; written as -BCE-with-logits, which never takes log(0)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(
        -1
    )


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I) drawn outside: the sample is a differentiable
    function of (mu, sigma), so the gradient reaches the encoder (Kingma & Welling 2014)."""
    return mu + (0.5 * logvar).exp() * eps


def elbo(log_px_z: Tensor, mu: Tensor, logvar: Tensor, beta: float | Tensor = 1.0) -> Tensor:
    """E_q[log p(x|z)] - beta * KL(q || p), per example, from a Monte Carlo reconstruction term
    (averaged over any sample axis already) and the analytic KL; beta = 1 is the ELBO, beta > 1
    the beta-VAE objective (Higgins et al. 2017)."""
    return log_px_z - beta * gaussian_kl(mu, logvar).sum(-1)


def free_bits_kl(mu: Tensor, logvar: Tensor, lam: float) -> Tensor:
    """KL with free bits (Kingma et al. 2016, IAF): each latent dimension's KL, averaged over the
    minibatch, counts as at least `lam` nats, so lowering it below `lam` earns nothing and the
    decoder is not rewarded for switching a unit off. Returns one number (summed over dims)."""
    kl = gaussian_kl(mu, logvar).flatten(0, -2).mean(0)  # per dimension, batch mean
    return kl.clamp(min=lam).sum()


def kl_warmup(step: int, steps: int) -> float:
    """Deterministic KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): the KL weight
    rises linearly from 0 to 1 over the first `steps` updates, so the decoder first learns to
    use z before the KL term pulls q to the prior."""
    return 1.0 if steps <= 0 else min(1.0, step / steps)


def log_importance_weights(log_px_z: Tensor, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log w = log p(x|z) + log p(z) - log q(z|x) for samples z of shape (..., k, d) and
    q's parameters of shape (..., d); returns shape (..., k)."""
    mu, logvar = mu.unsqueeze(-2), logvar.unsqueeze(-2)
    return log_px_z + log_normal(z) - log_normal(z, mu, logvar)


def iwae_bound(log_w: Tensor) -> Tensor:
    """L_k = log (1/k) sum_i w_i over the last axis, computed as logsumexp - log k."""
    return torch.logsumexp(log_w, dim=-1) - math.log(log_w.shape[-1])
