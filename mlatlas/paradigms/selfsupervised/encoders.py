"""The encoder the pretexts train: a tiny vision transformer (topic 7's ViT) mapping a
(B, 1, 28, 28) image to a feature vector h = f(x). A transformer, because the masked
autoencoder needs patches as tokens, and one encoder for every pretext keeps the comparison
about the pretext alone (on two CPU cores it also trains faster than LeNet-5's trunk).

Every pretext attaches its own head to h and is judged by a linear probe on h, so the
comparison is between what the pretexts teach the same encoder, not between heads.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.transformers.models import ViT


class ViTEncoder(nn.Module):
    """A vision transformer's encoder (Dosovitskiy et al. 2021) without its class head: h is
    the mean of the final layer-normed tokens (the class token and every patch)."""

    def __init__(self, d: int = 48, heads: int = 4, layers: int = 2, patch: int = 7) -> None:
        super().__init__()
        self.vit = ViT(28, patch, 1, d, heads, layers, n_classes=1)
        self.dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.vit
        tokens = v.embed(v.patches(x))
        tokens = torch.cat([v.cls.expand(len(x), -1, -1), tokens], dim=1)
        return v.encoder(tokens).mean(1)


class WithHead(nn.Module):
    """An encoder f and a head g: ``forward(x)`` is g(f(x)), ``forward(x, features=True)`` is
    f(x) (the representation the linear probe reads)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor:
        h = self.encoder(x)
        return h if features else self.head(h)
