"""Receptive fields: analytically from the layer geometry, and empirically from gradients.

Going up a layer with kernel k, stride s, padding p and dilation d, with r the receptive
field, j the distance in input pixels between adjacent units ("jump") and c the input
coordinate of the first unit's centre (Araujo, Norris & Sim 2019, Distill):

    r_out = r_in + (k - 1) d j_in,     j_out = j_in s,     c_out = c_in + ((k - 1) d / 2 - p) j_in

Measured instead, the field of a unit is the support of the gradient of its output with
respect to the input: the pixels that can change it. `gradient_fields` measures it after every
conv and pooling layer of a network as it stands (its own weights and max pools), so the
formula can be compared with the network it describes.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

SPATIAL = (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)


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


def _extent(support: torch.Tensor, axis: int) -> int:
    """Rows (axis 0) or columns (axis 1) from the first to the last non-zero one."""
    idx = torch.nonzero(support.any(dim=1 - axis)).flatten()
    return int(idx.max() - idx.min() + 1) if len(idx) else 0


@torch.enable_grad()
def gradient_fields(
    layers: Sequence[torch.nn.Module], canvases: torch.Tensor
) -> list[tuple[float, float]]:
    """Height and width of the measured receptive field after every conv or pooling layer of
    the chain `layers` (applied in order; other modules, such as BatchNorm and ReLU, pass
    through), on the network's own weights, in float64.

    For the layer's output, the gradient of its centre unit (summed over channels) is taken
    with respect to each of the `canvases` (N, C, H, W); the field is the bounding box of the
    pixels where any canvas's gradient is non-zero. Through a max pool and a ReLU the gradient
    of one input reaches only part of the window, so the union over several inputs is what
    covers the field. A support that touches the canvas border is clipped: ValueError (use a
    larger canvas). A non-finite gradient (a diverged network) gives NaN."""
    chain = [copy.deepcopy(m).double().eval() for m in layers]
    x = canvases.detach().to(torch.float64).requires_grad_()
    outs, h = [], x
    for m in chain:
        h = m(h)
        if isinstance(m, SPATIAL):
            outs.append(h)
    fields = []
    for i, out in enumerate(outs):
        unit = out[:, :, out.shape[2] // 2, out.shape[3] // 2].sum()
        (g,) = torch.autograd.grad(unit, x, retain_graph=i < len(outs) - 1)
        if not torch.isfinite(g).all():
            fields.append((math.nan, math.nan))
            continue
        support = (g != 0).any(dim=1).any(dim=0)  # (H, W): any channel, any canvas
        if support[0].any() or support[-1].any() or support[:, 0].any() or support[:, -1].any():
            raise ValueError(f"the field after layer {i} reaches the canvas border: enlarge it")
        fields.append((float(_extent(support, 0)), float(_extent(support, 1))))
    return fields


def smallest_growth(sizes: Sequence[float]) -> float:
    """The smallest increase of the field from one layer to the next, starting from the
    single input pixel (1): > 0 iff the field grows at every layer (NaN if any is NaN)."""
    if any(math.isnan(s) for s in sizes):
        return math.nan
    return min(b - a for a, b in itertools.pairwise([1.0, *sizes]))


def largest_mismatch(measured: Sequence[tuple[float, float]], calculated: Sequence[int]) -> float:
    """max over layers and axes of |measured - calculated| field (NaN if any is NaN)."""
    if len(measured) != len(calculated):
        raise ValueError(f"{len(measured)} measured layers, {len(calculated)} calculated")
    gaps = [abs(m - c) for hw, c in zip(measured, calculated, strict=True) for m in hw]
    return math.nan if any(math.isnan(g) for g in gaps) else max(gaps)
