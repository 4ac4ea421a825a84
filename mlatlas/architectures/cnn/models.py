"""LeNet-5, a small VGG-style net and a CIFAR-style ResNet, built on our Conv2d.

Every model takes `ours`: True computes convolutions with this topic's im2col `conv2d`,
False with PyTorch's kernel (proven equal in the tests, and faster); the weights are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.cnn.conv import Conv2d


class LeNet5(nn.Module):
    """LeCun, Bottou, Bengio & Haffner (1998): C1 conv5 6 -> S2 pool -> C3 conv5 16 -> S4 pool
    -> C5 conv5 120 -> F6 84 -> 10. A 28x28 input is padded by 2 in C1 to the paper's 32x32.
    The paper used scaled tanh and trainable subsampling; `modern=True` uses ReLU and max
    pooling, `modern=False` tanh and average pooling."""

    def __init__(
        self, n_classes: int = 10, in_channels: int = 1, ours: bool = False, modern: bool = True
    ):
        super().__init__()
        act = nn.ReLU if modern else nn.Tanh
        pool = nn.MaxPool2d if modern else nn.AvgPool2d
        self.features = nn.Sequential(
            Conv2d(in_channels, 6, 5, padding=2, ours=ours),
            act(),
            pool(2),
            Conv2d(6, 16, 5, ours=ours),
            act(),
            pool(2),
            Conv2d(16, 120, 5, ours=ours),
            act(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(120, 84), act(), nn.Linear(84, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGGSmall(nn.Module):
    """Stages of two 3x3 convolutions and a 2x2 max pool (Simonyan & Zisserman 2015), then
    global average pooling and a linear classifier."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        n_classes: int = 10,
        in_channels: int = 1,
        ours: bool = False,
    ):
        super().__init__()
        stages, c = [], in_channels
        for w in widths:
            stages.append(
                nn.Sequential(
                    Conv2d(c, w, 3, padding=1, ours=ours),
                    nn.BatchNorm2d(w),
                    nn.ReLU(),
                    Conv2d(w, w, 3, padding=1, ours=ours),
                    nn.BatchNorm2d(w),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                )
            )
            c = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c, n_classes)

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage_outputs(x)[-1].mean(dim=(2, 3)))


def shortcut(c_in: int, c_out: int, stride: int = 1, ours: bool = False) -> nn.Module:
    """The identity when shapes match, else a strided 1x1 conv with BN (option B of He et
    al. 2016): the path a residual block adds its branch to."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(
        Conv2d(c_in, c_out, 1, stride=stride, bias=False, ours=ours), nn.BatchNorm2d(c_out)
    )


class BasicBlock(nn.Module):
    """y = relu(F(x) + shortcut(x)), F = conv3-BN-relu-conv3-BN (He et al. 2016). When the
    shape changes, the shortcut is a strided 1x1 conv with BN (option B of the paper).
    `residual=False` drops the shortcut: the same block as a plain network's layer pair."""

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, residual: bool = True, ours: bool = False
    ):
        super().__init__()
        self.residual = residual
        self.f = nn.Sequential(
            Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False, ours=ours),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            Conv2d(c_out, c_out, 3, padding=1, bias=False, ours=ours),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = shortcut(c_in, c_out, stride, ours)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.f(x)
        if self.residual:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    """He et al. (2016), section 4.2: a 3x3 stem, three stages of n blocks with 16, 32, 64
    channels (stride 2 between stages), global average pooling, a linear layer: 6n + 2 layers.
    `residual=False` gives the plain network of the same depth."""

    def __init__(
        self,
        n: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
        n_classes: int = 10,
        in_channels: int = 1,
        residual: bool = True,
        ours: bool = False,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            Conv2d(in_channels, widths[0], 3, padding=1, bias=False, ours=ours),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(c, w, stride, residual, ours))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)

    @property
    def depth(self) -> int:
        return 2 + 2 * len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))
