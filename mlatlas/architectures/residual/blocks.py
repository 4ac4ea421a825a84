"""Residual and dense blocks.

    basic          y = relu(F(x) + x), F = conv3-BN-relu-conv3-BN          (He et al. 2016a)
    bottleneck     F = conv1-BN-relu-conv3-BN-relu-conv1-BN, 4x wider output (He et al. 2016a)
    pre-activation y = x + F(x), F = BN-relu-conv3-BN-relu-conv3: nothing on the identity
                   path, so x_L = x_l + sum of the blocks in between          (He et al. 2016b)
    dense block    x_l = H_l([x_0, x_1, ..., x_{l-1}]), H = BN-relu-conv3 producing k channels
                   (the growth rate); a transition (BN-relu-conv1-avgpool2) shrinks between
                   blocks                                                   (Huang et al. 2017)

The basic block lives in topic 5 (`mlatlas.architectures.cnn.models.BasicBlock`), with the
CIFAR-style ResNet that uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.cnn.conv import Conv2d
from mlatlas.architectures.cnn.models import BasicBlock, CifarResNet, shortcut

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "DenseBlock",
    "DenseNet",
    "PreActBlock",
    "Transition",
    "zero_init_residual",
]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, ours: bool = False):
        super().__init__()
        c_out = width * self.expansion
        self.f = nn.Sequential(
            Conv2d(c_in, width, 1, bias=False, ours=ours),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            Conv2d(width, width, 3, stride=stride, padding=1, bias=False, ours=ours),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            Conv2d(width, c_out, 1, bias=False, ours=ours),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = shortcut(c_in, c_out, stride, ours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.f(x) + self.shortcut(x))


class PreActBlock(nn.Module):
    def __init__(self, c: int, ours: bool = False):
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(),
            Conv2d(c, c, 3, padding=1, bias=False, ours=ours),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            Conv2d(c, c, 3, padding=1, bias=False, ours=ours),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)  # a clean identity path: no ReLU or BN after the sum


def cat_channels(maps: list[torch.Tensor], groups: int = 1) -> torch.Tensor:
    """Concatenate feature maps along channels; with `groups` > 1 the channels of each map
    are `groups` equal blocks (one per stacked replicate, see `residual.grouped`) and the
    concatenation is done block by block, so each replicate's channels stay together."""
    if groups == 1:
        return torch.cat(maps, dim=1)
    b, _, h, w = maps[0].shape
    # channels last: (b, h, w, groups, c_i) pieces joined on c_i, one copy, no reordering
    parts = [m.permute(0, 2, 3, 1).reshape(b, h, w, groups, -1) for m in maps]
    return torch.cat(parts, dim=-1).reshape(b, h, w, -1).permute(0, 3, 1, 2)


class DenseBlock(nn.Module):
    def __init__(self, c_in: int, growth: int, layers: int, ours: bool = False):
        super().__init__()
        self.groups = 1  # set by residual.grouped when R nets are stacked as channel groups
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(c_in + i * growth),
                nn.ReLU(),
                Conv2d(c_in + i * growth, growth, 3, padding=1, bias=False, ours=ours),
            )
            for i in range(layers)
        )
        self.c_out = c_in + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(cat_channels(features, self.groups)))  # every earlier map
        return cat_channels(features, self.groups)


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int, ours: bool = False):
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            Conv2d(c_in, c_out, 1, bias=False, ours=ours),
            nn.AvgPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class DenseNet(nn.Module):
    """A small DenseNet: stem conv, dense blocks with transitions (compression 0.5), BN-relu,
    global average pooling and a linear classifier."""

    def __init__(
        self,
        growth: int = 12,
        layers: tuple[int, ...] = (4, 4, 4),
        n_classes: int = 10,
        in_channels: int = 1,
        ours: bool = False,
    ):
        super().__init__()
        c = 2 * growth
        mods: list[nn.Module] = [Conv2d(in_channels, c, 3, padding=1, bias=False, ours=ours)]
        for i, n in enumerate(layers):
            block = DenseBlock(c, growth, n, ours)
            mods.append(block)
            c = block.c_out
            if i < len(layers) - 1:
                mods.append(Transition(c, c // 2, ours))
                c //= 2
        mods += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*mods)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def zero_init_residual(model: nn.Module) -> nn.Module:
    """Set the last BN's scale in every residual branch to 0, so that each block starts as
    the identity (Goyal et al. 2017)."""
    for m in model.modules():
        if isinstance(m, (BasicBlock, Bottleneck)):
            bn = m.f[-1]
            nn.init.zeros_(bn.weight)
    return model
