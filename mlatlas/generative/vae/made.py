r"""An autoregressive decoder: MADE conditioned on z (Germain et al. 2015).

$$p_\theta(x \mid z) = \prod_{i=1}^{D} \mathrm{Bernoulli}\big(x_i;\ \mathrm{sigmoid}(
  a_i(x_{<i}, z))\big),$$

computed for every $i$ in one pass by masking the weights: pixel $i$ (raster order) has
degree $i$, hidden unit $k$ a degree $m_k \in \{1, \dots, D-1\}$; the input-to-hidden mask
lets unit $k$ see pixels $j \le m_k$, the hidden-to-output mask lets output $i$ see units with
$m_k < i$, and a strictly lower-triangular direct connection adds $x_{<i}$. z enters every
hidden unit unmasked.

Such a decoder can model the pixels well without z at all, which is what makes a VAE with it
prone to posterior collapse: the KL term is cheapest at $q(z \mid x) = p(z)$, and a decoder
that needs no information from z leaves nothing to pay it for (Bowman et al. 2016; Chen et
al. 2017, "Variational lossy autoencoder").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mlatlas.generative.vae.elbo import bernoulli_log_likelihood


class MADEDecoder(nn.Module):
    """p(x | z) = prod_i Bernoulli(x_i; sigmoid(a_i(x_<i, z))), one masked hidden layer."""

    def __init__(self, z_dim: int, hidden: int, x_dim: int) -> None:
        super().__init__()
        degree_in = torch.arange(1, x_dim + 1)
        # m_k = 1 + floor(k (D - 2) / (H - 1)), k = 0..H-1: from 1 to D - 1, every degree used
        # when H >= D - 1 and evenly spread when H < D - 1 (k mod (D - 1) would stop at H)
        degree_h = 1 + torch.arange(hidden) * max(x_dim - 2, 0) // max(hidden - 1, 1)
        self.register_buffer("mask_in", (degree_h[:, None] >= degree_in[None, :]).float())
        self.register_buffer("mask_out", (degree_in[:, None] > degree_h[None, :]).float())
        self.register_buffer("mask_direct", torch.tril(torch.ones(x_dim, x_dim), diagonal=-1))
        self.w_in = nn.Linear(x_dim, hidden)
        self.w_z = nn.Linear(z_dim, hidden, bias=False)
        self.w_out = nn.Linear(hidden, x_dim)
        self.direct = nn.Linear(x_dim, x_dim, bias=False)
        self.z_dim, self.x_dim = z_dim, x_dim

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        """Logits of every pixel given the pixels before it (x, teacher forcing) and z."""
        if x is None:
            raise ValueError("an autoregressive decoder needs x (use sample() to generate)")
        h = x @ (self.w_in.weight * self.mask_in).T + self.w_in.bias + self.w_z(z)
        h = torch.relu(h)
        return (
            h @ (self.w_out.weight * self.mask_out).T
            + self.w_out.bias
            + x @ (self.direct.weight * self.mask_direct).T
        )

    def log_likelihood(self, out: Tensor, x: Tensor) -> Tensor:
        return bernoulli_log_likelihood(out, x)

    @torch.no_grad()
    def sample(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Binary images drawn pixel by pixel in raster order: D passes."""
        x = torch.zeros(len(z), self.x_dim, device=z.device)
        for i in range(self.x_dim):
            p = torch.sigmoid(self(z, x)[:, i])
            x[:, i] = (torch.rand(len(z), generator=generator, device=z.device) < p).float()
        return x
