r"""Generators and discriminators: MLPs for 2-D mixtures, DCGAN for 28x28 one-channel images.

**2-D.** The toy networks of Metz et al. (2017, "Unrolled generative adversarial networks"),
used since for the ring and grid benchmarks: G maps z ~ N(0, I_256) through two hidden ReLU
layers of 128 to a point; D has one hidden ReLU layer of 128 and outputs a logit.

**DCGAN** (Radford et al. 2016, "Unsupervised representation learning with deep
convolutional generative adversarial networks"), scaled to 28x28. Its rules: no pooling, the
resolution changes by strided convolutions (transposed in G) that learn their own
up- and down-sampling; BatchNorm in G and in D except at G's output and D's input; ReLU in G
with tanh at the output (images in [-1, 1]); LeakyReLU with slope 0.2 in D; weights drawn
from N(0, 0.02). Here

    G: z -> linear -> 2w x 7 x 7 -> convT 4/2 -> w x 14 x 14 -> convT 4/2 -> 1 x 28 x 28, tanh
    D: 1 x 28 x 28 -> conv 4/2 -> w x 14 x 14 -> conv 4/2 -> 2w x 7 x 7 -> linear -> logit

with w = 32 by default: about 0.27 M weights, minutes on a CPU.

D's normalization is one of "batch" (DCGAN), "spectral" (every weight divided by its spectral
norm, `spectral_norm`, and no BatchNorm, as in Miyato et al. 2018) or "none" (the WGAN-GP
critic: a gradient penalty per example must not see the other examples of the batch).
Discriminators return logits of shape (B,); `in_channels` / `in_dim` grow with packing.
"""

from __future__ import annotations

from torch import Tensor, nn

from mlatlas.core.train import make_mlp
from mlatlas.generative.gan.spectral_norm import spectral_norm

NORMS = ("batch", "spectral", "none")


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> point (B, out_dim): `depth` hidden ReLU layers of width `hidden`."""

    def __init__(self, z_dim: int = 256, hidden: int = 128, depth: int = 2, out_dim: int = 2):
        super().__init__()
        self.z_dim = z_dim
        self.net = make_mlp([z_dim, *[hidden] * depth, out_dim])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x (B, in_dim) -> logit (B,); `spectral` normalizes every linear layer's weight."""

    def __init__(
        self, in_dim: int = 2, hidden: int = 128, depth: int = 1, spectral: bool = False
    ) -> None:
        super().__init__()
        self.net = make_mlp([in_dim, *[hidden] * depth, 1])
        if spectral:
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    spectral_norm(layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv and linear weights N(0, 0.02), BatchNorm scales
    N(1, 0.02) and shifts 0. Apply before `spectral_norm`, which stores the weight it finds."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> image (B, 1, 28, 28) in [-1, 1]."""

    def __init__(self, z_dim: int = 64, width: int = 32, out_channels: int = 1) -> None:
        super().__init__()
        self.z_dim, self.width = z_dim, width
        # no bias before BatchNorm: its shift would cancel it
        self.project = nn.Linear(z_dim, 2 * width * 7 * 7, bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # 14x14
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, out_channels, 4, stride=2, padding=1),  # 28x28
            nn.Tanh(),  # no BatchNorm at the output: the images keep their own statistics
        )
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.project(z).view(-1, 2 * self.width, 7, 7))


class DCGANDiscriminator(nn.Module):
    """image (B, in_channels, 28, 28) -> logit (B,); `norm` is "batch", "spectral" or "none"."""

    def __init__(self, in_channels: int = 1, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; known: {', '.join(NORMS)}")
        batch = norm == "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1),  # 14x14; no norm at the input
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=not batch),  # 7x7
        ]
        if batch:
            layers.append(nn.BatchNorm2d(2 * width))
        layers += [nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1)]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        if norm == "spectral":
            for layer in self.net:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    spectral_norm(layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)
