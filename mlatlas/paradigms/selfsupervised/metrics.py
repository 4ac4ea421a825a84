r"""Alignment and uniformity of a representation on the unit sphere (Wang & Isola 2020).

For normalised features $f(x) \in S^{d-1}$ and positive pairs $(x, y)$ (two views of one image),

$$\mathcal{L}_{\mathrm{align}} = \mathbb{E}_{(x,y)}\,\lVert f(x) - f(y)\rVert_2^{\alpha},
\qquad
\mathcal{L}_{\mathrm{uniform}} = \log\, \mathbb{E}_{x, y \text{ i.i.d.}}\,
e^{-t \lVert f(x) - f(y)\rVert_2^2},$$

with $\alpha = 2$ and $t = 2$ as in the paper. Lower alignment: the two views of an image land
close together; lower uniformity: the features spread over the sphere (its minimum,
for uniformly distributed features, approaches $-2t = -4$ as $d$ grows). Wang & Isola showed
that the contrastive loss optimises both asymptotically and that the two predict downstream
accuracy. The expectation over i.i.d. pairs is taken over distinct pairs $i < j$ of a sample,
as in their code (`torch.pdist`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean ||f(x) - f(y)||^alpha over positive pairs (rows of z1, z2), after normalising."""
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    return (z1 - z2).norm(dim=-1).pow(alpha).mean(-1)


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log of the mean of exp(-t ||f(x_i) - f(x_j)||^2) over pairs i < j, after normalising;
    z is (N, d) or (R, N, d)."""
    z = F.normalize(z, dim=-1)
    n = z.shape[-2]
    gram = z @ z.transpose(-2, -1)
    sq = (2 - 2 * gram).clamp_min(0)  # ||u - v||^2 = 2 - 2 u.v on the sphere
    i, j = torch.triu_indices(n, n, offset=1)
    return torch.logsumexp(-t * sq[..., i, j], dim=-1) - math.log(len(i))
