r"""Topic 1, neural networks and backpropagation.

A network composes affine maps and elementwise nonlinearities,
$f(x) = W_L\,\sigma(W_{L-1} \cdots \sigma(W_1 x + b_1) \cdots) + b_L$, and backpropagation
computes every $\partial L / \partial W_l$ in one reverse sweep of the chain rule
(Rumelhart, Hinton & Williams 1986). `autograd` builds that sweep on NumPy from scratch; `nn`
puts layers and SGD on it; the labs measure universal approximation, gradient flow at
initialisation and the benefit of depth, and show the engine trains exactly like PyTorch.
"""

from mlatlas.foundations.backprop.autograd import (
    Tensor,
    cross_entropy,
    linear,
    log_softmax,
    mse,
    no_grad,
    tensor,
    unbroadcast,
)
from mlatlas.foundations.backprop.nn import MLP, SGD, Linear, Module

__all__ = [
    "MLP",
    "SGD",
    "Linear",
    "Module",
    "Tensor",
    "cross_entropy",
    "linear",
    "log_softmax",
    "mse",
    "no_grad",
    "tensor",
    "unbroadcast",
]
