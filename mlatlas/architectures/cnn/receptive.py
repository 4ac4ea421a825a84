"""Receptive fields: analytically from the layer geometry, and empirically from gradients.

Going up a layer with kernel k, stride s, padding p and dilation d, with r the receptive
field, j the distance in input pixels between adjacent units ("jump") and c the input
coordinate of the first unit's centre (Araujo, Norris & Sim 2019, Distill):

    r_out = r_in + (k - 1) d j_in,     j_out = j_in s,     c_out = c_in + ((k - 1) d / 2 - p) j_in
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Geometry:
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


@dataclass(frozen=True)
class Field:
    size: int  # receptive field, in input pixels
    jump: int  # input pixels between neighbouring units
    start: float  # input coordinate of the centre of unit 0


def receptive_fields(layers: list[Geometry]) -> list[Field]:
    """The field after each layer (1-D; apply per axis for 2-D)."""
    f = Field(1, 1, 0.0)
    out = []
    for g in layers:
        f = Field(
            size=f.size + (g.kernel - 1) * g.dilation * f.jump,
            jump=f.jump * g.stride,
            start=f.start + ((g.kernel - 1) * g.dilation / 2 - g.padding) * f.jump,
        )
        out.append(f)
    return out


def geometry_of(model: torch.nn.Module) -> list[Geometry]:
    """The conv and pooling layers of a model, in order, as 1-D geometries (square kernels)."""
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            out.append(Geometry(m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]))
        elif isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            k, s = m.kernel_size, m.stride
            k = k if isinstance(k, int) else k[0]
            s = s if isinstance(s, int) else s[0]
            p = m.padding if isinstance(m.padding, int) else m.padding[0]
            d = getattr(m, "dilation", 1)
            out.append(Geometry(k, s, p, d if isinstance(d, int) else d[0]))
    return out


def empirical_receptive_field(
    model: torch.nn.Module, size: int, channels: int = 1
) -> tuple[int, int]:
    """Height and width of the input region whose gradient is non-zero for the centre unit
    of the model's last feature map. Weights are set to 1 and biases to 0 so that no
    contributions cancel, and max pooling is replaced by average pooling of the same
    geometry: a max sends gradient to one input per window, but its field is the window's."""
    import copy

    probe = copy.deepcopy(model).double()
    for m in list(probe.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(
                    m,
                    child_name,
                    torch.nn.AvgPool2d(child.kernel_size, child.stride, child.padding),
                )
    with torch.no_grad():
        for p_name, p in probe.named_parameters():
            p.fill_(0.0 if p_name.endswith("bias") else 1.0)
    x = torch.rand(1, channels, size, size, dtype=torch.float64).add_(0.5).requires_grad_()
    y = probe(x)
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    nz = torch.nonzero(x.grad[0].abs().sum(0))
    return int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1)
