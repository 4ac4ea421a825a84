r"""The gradient reversal layer (Ganin & Lempitsky 2015, "Unsupervised Domain Adaptation by
Backpropagation").

$$R_\lambda(x) = x, \qquad \frac{\partial R_\lambda}{\partial x} = -\lambda I .$$

Placed between a feature extractor and a domain classifier, it lets one backward pass train
the classifier to tell the domains apart while pushing the features to make that impossible:
the minimax game of domain-adversarial training, with no alternating updates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    generate_vmap_rule = True  # so it runs inside torch.func.vmap (batched ensembles)

    @staticmethod
    def forward(x: torch.Tensor, lambd: float) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.lambd = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Identity forward; the backward pass multiplies the gradient by -lambd."""
    return _Reverse.apply(x, lambd)


class GradientReversal(nn.Module):
    def __init__(self, lambd: float = 1.0) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambd)
