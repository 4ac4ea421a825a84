r"""Low-rank adaptation (LoRA; Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
Models").

A pretrained weight $W_0 \in \mathbb{R}^{d_\text{out} \times d_\text{in}}$ stays frozen; the
update is a product of two thin matrices, $B \in \mathbb{R}^{d_\text{out} \times r}$ and
$A \in \mathbb{R}^{r \times d_\text{in}}$:

$$h = W_0 x + b + \frac{\alpha}{r} B A x .$$

$A$ is drawn at random and $B = 0$, so training starts exactly at the pretrained function.
The scaling $\alpha / r$ keeps the update's size roughly independent of the rank, so the
learning rate need not be retuned when $r$ changes. After training, $W = W_0 + \frac{\alpha}{r}
BA$ can be merged into one `nn.Linear`: inference costs nothing extra.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable rank-`r` update (alpha / r) B A."""

    def __init__(self, base: nn.Linear, r: int, alpha: float = 1.0) -> None:
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device)
        )
        # The reference implementation (microsoft/LoRA, loralib) initialises A like a Linear
        # weight; any random A works because B = 0 makes the initial update exactly zero.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A, the update to W_0."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x A^T B^T costs r (d_in + d_out) per example instead of d_in d_out for B A.
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """One `nn.Linear` computing the same function: W = W_0 + (alpha / r) B A."""
        out = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            dtype=self.base.weight.dtype,
            device=self.base.weight.device,
        )
        out.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out


def add_lora(model: nn.Module, r: int, alpha: float = 1.0, names: list[str] | None = None):
    """Replace the `nn.Linear` submodules of `model` (those in `names`, or all) by
    `LoRALinear`s in place; returns `model`."""
    targets = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and (names is None or n in names)
    ]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every `LoRALinear` in `model` by its merged `nn.Linear`, in place."""
    targets = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).merged())
    return model
