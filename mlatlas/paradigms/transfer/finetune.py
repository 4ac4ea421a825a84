r"""What to train when adapting a pretrained network: a linear probe (only a new head), the
last k layers, everything, or everything with a learning rate per layer.

Discriminative fine-tuning (Howard & Ruder 2018, ULMFiT) gives layer $l$ of $L$ its own rate,

$$\eta^{l-1} = \eta^{l} / 2.6, \qquad \theta^l_t = \theta^l_{t-1} - \eta^l \nabla_{\theta^l} J,$$

because early layers hold general features that should move little and the top layers the
task-specific ones. Freezing is the limit $\eta^l = 0$: a linear probe freezes all but the
head; "last k" freezes all but the top k layers (Yosinski et al. 2014 freeze the first n).

In a batched ensemble every member is one arm of a comparison; `mask_members` freezes a
parameter in some members only, by zeroing their gradient. With a zero gradient from the
first step, Adam's moments stay zero and its update is exactly zero, so a masked member
trains as if the parameter were frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mlatlas.core.ensemble import Ensemble


def layer_of(name: str, layers: Sequence[str]) -> int:
    """Index of the layer (a module prefix in `layers`) that parameter `name` belongs to."""
    for i, prefix in enumerate(layers):
        if name == prefix or name.startswith(prefix + "."):
            return i
    raise KeyError(f"parameter {name!r} is in none of the layers {list(layers)}")


def set_trainable(model: nn.Module, trainable: Callable[[str], bool]) -> list[str]:
    """requires_grad = trainable(name) for every parameter; returns the trainable names."""
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(trainable(name))
        if p.requires_grad:
            names.append(name)
    return names


def linear_probe(name: str, head: str = "heads.1") -> bool:
    """Train the target head only: the pretrained features are frozen."""
    return name.startswith(head + ".")


def last_k(k: int, layers: Sequence[str]) -> Callable[[str], bool]:
    """Train only the top `k` of `layers` (ordered input to output)."""
    return lambda name: layer_of(name, layers) >= len(layers) - k


def discriminative_groups(
    model: nn.Module, layers: Sequence[str], lr: float, decay: float = 2.6
) -> list[dict]:
    """Optimizer parameter groups, layer l (of L, input to output) at lr / decay^(L-1-l);
    frozen parameters are left out."""
    groups: list[dict] = [
        {"params": [], "lr": lr / decay ** (len(layers) - 1 - i)} for i in range(len(layers))
    ]
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[layer_of(name, layers)]["params"].append(p)
    return [g for g in groups if g["params"]]


def mask_members(ens: Ensemble, trainable: Callable[[int, str], bool]) -> None:
    """Train parameter `name` of member r only where trainable(r, name): a parameter no member
    trains stops requiring gradients, a mixed one gets its gradient zeroed per member."""
    for name, p in zip(ens.names, ens.stacked, strict=True):
        mask = torch.tensor([trainable(r, name) for r in range(ens.size)], dtype=p.dtype)
        if not mask.any():
            p.requires_grad_(False)
        elif not mask.all():
            p.register_hook(_scale_by(mask.view((-1,) + (1,) * (p.dim() - 1))))


def _scale_by(mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda g: g * mask
