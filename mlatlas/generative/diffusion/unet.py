r"""The noise-prediction networks: a small U-Net for 28x28 images and an MLP for 2-D points.

The U-Net follows Ho et al. (2020, Appendix B), itself after PixelCNN++ (Salimans et al.
2017) and the U-Net of Ronneberger et al. (2015), scaled down for one-channel 28x28 images:

- **time**: the step t enters as a sinusoidal embedding (Vaswani et al. 2017, in the
  concatenated form of Ho et al.'s code), $e(t) = [\sin(t\omega_i), \cos(t\omega_i)]$ with
  $\omega_i = 10000^{-i/(d/2 - 1)}$, then an MLP; one network serves every noise level.
- **residual blocks**: GroupNorm (Wu & He 2018: batch statistics would mix examples at
  different noise levels) -> SiLU -> 3x3 conv, plus a projection of the time embedding added
  to every channel, -> GroupNorm -> SiLU -> dropout -> 3x3 conv, plus the (1x1-projected)
  input. This is diffusers' ``ResnetBlock2D``, parameter names included.
- **resolutions** 28 -> 14 -> 7 (stride-2 convs down; nearest-neighbour upsampling and a
  conv up), with the activations of each resolution on the way down concatenated to the
  way up: the skips carry the fine detail that the 7x7 bottleneck cannot.
- **self-attention** at 7x7 only, where 49 positions make it cheap; it lets distant strokes
  agree. Topic 7's multi-head attention, over the positions as tokens.
- **class conditioning**: a learned embedding per class added to the time embedding, with
  one extra row, the null class $\varnothing$, for classifier-free guidance.

`DenoiserMLP` is the same idea for 2-D data: the point and the step's embedding (and a
class's, if any) concatenated, then an MLP. It predicts ε for DDPM, or the score
$s_\theta(x, \sigma_i)$ for score matching (`score`), where t is the noise level's index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mlatlas.architectures.transformers.attention import MultiheadAttention


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) steps (ints or floats) -> (B, dim) [sin(t ω_i) | cos(t ω_i)], ω_i = max_period^(
    −i/(dim/2 − 1)): frequencies from 1 down to 1/max_period, so nearby steps differ in the
    fast components and distant ones in the slow. An odd dim gets a zero column."""
    if dim < 4:
        raise ValueError(f"an embedding needs dim >= 4, got {dim}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=t.device)
        / (half - 1)
    )
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ResBlock(nn.Module):
    """Ho et al.'s residual block with the time embedding added between its two convs."""

    def __init__(
        self, c_in: int, c_out: int, temb_dim: int, groups: int = 8, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=1e-6)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # a 1x1 conv only where the channel count changes; else the identity
        self.conv_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]  # a shift per channel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class AttentionBlock(nn.Module):
    """GroupNorm, then self-attention over the H·W positions, added back to the input."""

    def __init__(self, channels: int, heads: int = 4, groups: int = 8) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.attn = MultiheadAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H·W, C)
        out, _ = self.attn(tokens, tokens, tokens)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)  # 28 -> 14 -> 7

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        # nearest-neighbour then a conv: no checkerboard, unlike a strided transpose conv
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """ε_θ(x_t, t[, y]) for (B, C, 28, 28) images (any size divisible by 2^(levels − 1)).

    channels[i] is the width at level i (28, 14, 7 for three levels); one residual block per
    level each way, two and the attention block in the middle. With n_classes, y in
    0 .. n_classes − 1 conditions and y = n_classes (`null_class`) is the unconditional ∅.

    The default widths (16, 32, 64) give 535k parameters with 10 classes; they keep the
    28x28 level narrow, where most of the arithmetic is: a forward and backward pass over
    128 digits takes about 0.2 s on two CPU cores, against 0.55 s for (32, 64, 64)."""

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64),
        temb_dim: int = 128,
        groups: int = 8,
        heads: int = 4,
        n_classes: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.n_classes = n_classes
        self.base_dim = self.channels[0]
        self.time_mlp = nn.Sequential(
            nn.Linear(self.base_dim, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim)
        )
        self.class_emb = nn.Embedding(n_classes + 1, temb_dim) if n_classes is not None else None
        self.conv_in = nn.Conv2d(in_channels, self.base_dim, 3, padding=1)

        def block(a: int, b: int) -> ResBlock:
            return ResBlock(a, b, temb_dim, groups, dropout)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = self.base_dim
        for i, c in enumerate(self.channels):
            self.down.append(block(prev, c))
            if i < len(self.channels) - 1:
                self.downsample.append(Downsample(c))
            prev = c
        self.mid1 = block(prev, prev)
        self.mid_attn = AttentionBlock(prev, heads, groups)
        self.mid2 = block(prev, prev)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(self.channels))):
            c = self.channels[i]
            self.up.append(block(prev + c, c))  # + c: the skip from the same level going down
            if i > 0:
                self.upsample.append(Upsample(c))
            prev = c
        self.norm_out = nn.GroupNorm(groups, prev, eps=1e-6)
        self.conv_out = nn.Conv2d(prev, in_channels, 3, padding=1)

    @property
    def null_class(self) -> int | None:
        return self.n_classes

    def embed(self, t: Tensor, y: Tensor | None) -> Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.base_dim))
        if self.class_emb is not None:
            if y is None:  # no label given: the unconditional model
                y = torch.full((len(t),), self.n_classes, dtype=torch.long, device=t.device)
            temb = temb + self.class_emb(y)
        elif y is not None:
            raise ValueError("this U-Net has no class conditioning (n_classes=None)")
        return temb

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        temb = self.embed(t, y)
        h = self.conv_in(x)
        skips = []
        for i, blk in enumerate(self.down):
            h = blk(h, temb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for i, blk in enumerate(self.up):
            h = blk(torch.cat([h, skips.pop()], dim=1), temb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DenoiserMLP(nn.Module):
    """f_θ(x, t[, y]) for (B, dim) points: [x, e(t)(, class embedding)] -> MLP -> (B, dim).

    t is a diffusion step or a noise level's index; with n_classes, y = n_classes is ∅."""

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        temb_dim: int = 32,
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.temb_dim = temb_dim
        self.n_classes = n_classes
        self.class_emb = nn.Embedding(n_classes + 1, temb_dim) if n_classes is not None else None
        width = dim + temb_dim * (2 if n_classes is not None else 1)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    @property
    def null_class(self) -> int | None:
        return self.n_classes

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        parts = [x, timestep_embedding(t, self.temb_dim).to(x.dtype)]
        if self.class_emb is not None:
            if y is None:
                y = torch.full((len(x),), self.n_classes, dtype=torch.long, device=x.device)
            parts.append(self.class_emb(y).to(x.dtype))
        elif y is not None:
            raise ValueError("this MLP has no class conditioning (n_classes=None)")
        return self.net(torch.cat(parts, dim=-1))
