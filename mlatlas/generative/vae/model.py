r"""A VAE for flattened images: a Gaussian encoder and a Bernoulli or Gaussian decoder.

Encoder (the recognition model): $x \mapsto (\mu_\phi(x), \log\sigma^2_\phi(x))$, an MLP
whose last layer has $2d$ outputs. Decoders (the generative model $p_\theta(x \mid z)$):

- Bernoulli, for binary pixels: $p_\theta(x \mid z) = \prod_i p_i^{x_i}(1 - p_i)^{1 - x_i}$
  with $p = \mathrm{sigmoid}(f_\theta(z))$ (Kingma & Welling 2014, appendix C.1);
- Gaussian, for real values: $\mathcal N(x; f_\theta(z), \sigma_x^2 I)$ with one learned
  $\log \sigma_x^2$ shared by all pixels (C.2 learns it per pixel from z; one shared scale
  keeps the decoder from explaining everything with variance).

The architecture is Burda et al.'s (2015) one-stochastic-layer network: two tanh hidden layers
on each side (784-200-200-50 at their size). ``forward(x, eps)`` takes the standard-normal
noise from the caller, so a step's noise comes from the generator the training loop owns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mlatlas.core.train import make_mlp
from mlatlas.generative.vae.elbo import (
    LOG_2PI,
    bernoulli_log_likelihood,
    reparameterize,
)


class GaussianEncoder(nn.Module):
    """q(z | x) = N(mu(x), diag exp(logvar(x)))."""

    def __init__(self, x_dim: int, hidden: Sequence[int], z_dim: int) -> None:
        super().__init__()
        self.net = make_mlp([x_dim, *hidden, 2 * z_dim], activation="tanh")
        self.z_dim = z_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=-1)
        return mu, logvar


class BernoulliDecoder(nn.Module):
    """p(x | z) = Bernoulli(sigmoid(f(z))): returns the logits."""

    def __init__(self, z_dim: int, hidden: Sequence[int], x_dim: int) -> None:
        super().__init__()
        self.net = make_mlp([z_dim, *hidden, x_dim], activation="tanh")

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        return self.net(z)  # pixels are independent given z: x is not an input

    def log_likelihood(self, out: Tensor, x: Tensor) -> Tensor:
        return bernoulli_log_likelihood(out, x)

    def mean(self, out: Tensor) -> Tensor:
        """E[x | z]: the pixel probabilities, what a sample figure shows."""
        return torch.sigmoid(out)


class GaussianDecoder(nn.Module):
    """p(x | z) = N(f(z), exp(log_var) I), one learned log-variance for every pixel."""

    def __init__(self, z_dim: int, hidden: Sequence[int], x_dim: int) -> None:
        super().__init__()
        self.net = make_mlp([z_dim, *hidden, x_dim], activation="tanh")
        self.log_var = nn.Parameter(torch.zeros(()))

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        return self.net(z)

    def log_likelihood(self, out: Tensor, x: Tensor) -> Tensor:
        # log N(x; out, s^2 I) = -1/2 sum_i [log 2 pi + log s^2 + (x_i - out_i)^2 / s^2]
        sq = (x - out).pow(2).sum(-1)
        d = out.shape[-1]
        return -0.5 * (d * (LOG_2PI + self.log_var) + sq / self.log_var.exp())

    def mean(self, out: Tensor) -> Tensor:
        return out


class VAE(nn.Module):
    """Encoder, reparameterized sample, decoder.

    ``forward(x, eps)``, x of shape (B, D) and eps of shape (B, d) or (B, k, d), returns
    ``(log p(x | z), z, mu, logvar, decoder output)``, log p of shape (B,) or (B, k): the
    reconstruction term is computed inside the forward pass, so an `Ensemble` of VAEs runs the
    whole objective under one vmap. ``decoder`` is "bernoulli", "gaussian" or a module with
    ``forward(z, x)`` and ``log_likelihood(out, x)`` (an autoregressive decoder reads x).
    """

    def __init__(
        self,
        x_dim: int = 784,
        hidden: Sequence[int] = (200, 200),
        z_dim: int = 50,
        decoder: str | nn.Module = "bernoulli",
    ) -> None:
        super().__init__()
        self.encoder = GaussianEncoder(x_dim, hidden, z_dim)
        decoders = {"bernoulli": BernoulliDecoder, "gaussian": GaussianDecoder}
        if isinstance(decoder, nn.Module):
            self.decoder = decoder
        elif decoder in decoders:
            self.decoder = decoders[decoder](z_dim, tuple(reversed(hidden)), x_dim)
        else:
            raise ValueError(f"unknown decoder {decoder!r}; known: {list(decoders)}")
        self.z_dim = z_dim

    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        mu, logvar = self.encoder(x)
        target = x
        if eps.dim() == mu.dim() + 1:  # k samples per example share the example's q
            z = reparameterize(mu.unsqueeze(-2), logvar.unsqueeze(-2), eps)
            target = x.unsqueeze(-2).expand(*z.shape[:-1], x.shape[-1])
        else:
            z = reparameterize(mu, logvar, eps)
        out = self.decoder(z, target)
        return self.decoder.log_likelihood(out, target), z, mu, logvar, out

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """E[x | z] for n draws z ~ N(0, I) from the prior (factorized decoders only: an
        autoregressive decoder samples pixel by pixel, `MADEDecoder.sample`)."""
        p = next(self.parameters())
        z = torch.randn(n, self.z_dim, generator=generator, device=p.device, dtype=p.dtype)
        return self.decoder.mean(self.decoder(z))
