"""R copies of a convolutional net trained as one: replicates stacked as channel groups.

`mlatlas.core.ensemble.Ensemble` stacks replicates with `vmap`, which BatchNorm's running
statistics do not allow. Every net of this topic is built from convolutions, BatchNorm,
ReLU, additions, pooling and a linear head, all of which act on channels separately or
within a group. So R nets with identical architecture become one net with R times the
channels: every convolution gets ``groups * R`` groups (member r owns channels
``[r C, (r + 1) C)``), every BatchNorm R times the features (its statistics are per channel,
hence per member), and the linear head a stacked weight (`GroupedLinear`). A dense block's
concatenation is done per member (`mlatlas.architectures.residual.blocks.cat_channels`).
Member r's output depends only on member r's weights and input, and the gradient of the sum
of the R losses with respect to member r's weights is member r's own gradient; an
element-wise optimizer (SGD with momentum and weight decay) then performs R independent
runs exactly (``tests/test_residual.py`` checks this against separately trained nets). On a
2-core CPU five 32-layer nets cost about half as much this way as one after another.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from mlatlas.architectures.residual.blocks import DenseBlock

__all__ = ["Grouped", "GroupedLinear"]


class GroupedLinear(nn.Module):
    """R linear maps applied to R channel groups: (B, R * in) -> (R, B, out)."""

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.size = len(linears)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]).clone())
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears]).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.size, -1)
        return torch.einsum("bri,roi->rbo", x, self.weight) + self.bias[:, None]


def _group(mods: Sequence[nn.Module], r: int) -> nn.Module:
    m0 = mods[0]
    if isinstance(m0, nn.Conv2d):
        if getattr(m0, "ours", False):
            raise ValueError("grouping uses torch's convolution kernel: build with ours=False")
        g = nn.Conv2d(
            m0.in_channels * r,
            m0.out_channels * r,
            m0.kernel_size,
            m0.stride,
            m0.padding,
            m0.dilation,
            m0.groups * r,
            bias=m0.bias is not None,
        )
        g.weight.data = torch.cat([m.weight.detach() for m in mods]).clone()
        if m0.bias is not None:
            g.bias.data = torch.cat([m.bias.detach() for m in mods]).clone()
        return g
    if isinstance(m0, nn.BatchNorm2d):
        g = nn.BatchNorm2d(m0.num_features * r, m0.eps, m0.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(g, name).data = torch.cat([getattr(m, name).detach() for m in mods]).clone()
        g.num_batches_tracked.copy_(m0.num_batches_tracked)
        return g
    if isinstance(m0, nn.Linear):
        return GroupedLinear(mods)
    if any(True for _ in m0.parameters(recurse=False)) or any(
        True for _ in m0.buffers(recurse=False)
    ):
        raise ValueError(f"cannot group {type(m0).__name__}: it holds its own tensors")
    g = copy.copy(m0)  # same class and attributes, fresh tables; children replaced below
    g._parameters, g._buffers, g._modules = {}, {}, {}
    for name, _ in m0.named_children():
        g._modules[name] = _group([getattr(m, name) for m in mods], r)
    if isinstance(g, DenseBlock):
        g.groups = r
    return g


class Grouped(nn.Module):
    """R nets of one architecture as one net: ``forward(x)`` returns (R, B, classes).

    ``x`` of shape (B, C, H, W) is shared by every member; (R, B, C, H, W) gives each member
    its own batch. ``member(r)`` returns member r as a standalone net (a copy of its weights).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a group needs at least one model")
        self.size = len(models)
        self.net = _group(list(models), self.size).to(memory_format=torch.channels_last)
        self._template = [copy.deepcopy(models[0])]  # a list: not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # (R, B, C, H, W): member r's images in its own channel group
            x = x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])
        else:
            x = x.repeat(1, self.size, 1, 1)
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def member(self, r: int) -> nn.Module:
        m = copy.deepcopy(self._template[0])
        mine = {**dict(self.net.named_parameters()), **dict(self.net.named_buffers())}
        state = {}
        for name, t in m.state_dict().items():
            g = mine[name].detach()
            if g.dim() == t.dim() + 1:  # stacked (a linear head)
                state[name] = g[r].clone()
            elif t.dim() == 0:  # num_batches_tracked: shared
                state[name] = g.clone()
            else:  # concatenated along dim 0 (convolutions, BatchNorm)
                n = t.shape[0]
                state[name] = g[r * n : (r + 1) * n].clone()
        m.load_state_dict(state)
        return m.eval()
