r"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020): two random views of every image, an encoder
$h = f(x)$, a projection head $z = g(h) = W_2\,\mathrm{ReLU}(W_1 h)$, and the NT-Xent loss over
the $2N$ views of a batch,

$$\ell_{i,j} = -\log \frac{\exp(\mathrm{sim}(z_i, z_j)/\tau)}
{\sum_{k \ne i} \exp(\mathrm{sim}(z_i, z_k)/\tau)}, \qquad
\mathrm{sim}(u, v) = \frac{u^\top v}{\lVert u\rVert \lVert v\rVert},$$

averaged over both orders of every positive pair. The loss is topic 3's `nt_xent`. The
representation kept for later tasks is $h$, not $z$: the head absorbs the invariances the
loss asks for (Chen et al. 2020, section 4.2).
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.foundations.losses.functions import nt_xent
from mlatlas.paradigms.selfsupervised.encoders import WithHead


def projection_head(dim: int, hidden: int = 128, out: int = 64) -> nn.Sequential:
    """g: Linear-ReLU-Linear, SimCLR's nonlinear projection."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


def simclr_model(encoder: nn.Module, hidden: int = 128, out: int = 64) -> WithHead:
    return WithHead(encoder, projection_head(encoder.dim, hidden, out))


def simclr_loss(model: nn.Module, v1: torch.Tensor, v2: torch.Tensor, tau: float) -> torch.Tensor:
    """NT-Xent between the projections of two views (B, ...) of the same B images."""
    return nt_xent(model(v1), model(v2), tau)
