r"""Rotation prediction (Gidaris, Singh & Komodakis 2018): rotate every image by
$k \cdot 90°$, $k \in \{0, 1, 2, 3\}$, and train $f$ with a 4-way head to tell $k$,

$$ \mathcal{L} = -\frac{1}{4N} \sum_{i=1}^{N} \sum_{k=0}^{3}
\log p_k\big(g(f(\mathrm{rot}_k\, x_i))\big).$$

To name the rotation of a digit the network has to know which way up the strokes go, which
is much of what a digit is; on a rotation-symmetric image (an 0, a sock seen from above) the
label is ambiguous, and the pretext teaches less.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate each image x[i] (B, C, H, W with H = W) counter-clockwise by k[i] * 90 degrees:
    a 90-degree turn is a transpose of the last two axes followed by a flip of the rows."""
    out = x
    for turn in range(1, 4):
        r = x
        for _ in range(turn):
            r = r.transpose(-2, -1).flip(-2)
        out = torch.where((k == turn).reshape(-1, 1, 1, 1), r, out)
    return out


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image (4B, C, H, W) and their labels k (4B,)."""
    k = torch.arange(4).repeat_interleave(len(x))
    return rotate90(x.repeat(4, 1, 1, 1), k), k


def rotation_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 4-way rotation head over all four rotations of the batch."""
    xr, k = rotation_batch(x)
    return F.cross_entropy(model(xr), k)
