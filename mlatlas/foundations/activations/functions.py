"""Activation functions, each with its derivative written out by hand.

Every activation is a pair (phi, phi'). `activation(name)` wraps the pair in a
`torch.autograd.Function` whose backward uses our phi' (not autograd's), so comparing
gradients with `torch.nn.functional` tests the derivative we wrote.

Equations and sources:
    sigmoid     1 / (1 + e^-x)                          phi' = phi (1 - phi)
    tanh        (e^x - e^-x) / (e^x + e^-x)             phi' = 1 - phi^2
    relu        max(0, x)                               phi' = [x > 0]   (Nair & Hinton 2010)
    leaky_relu  x if x > 0 else a x                     phi' = 1 or a    (Maas et al. 2013)
    elu         x if x > 0 else a (e^x - 1)             phi' = 1 or a e^x (Clevert et al. 2016)
    selu        s * elu(x, a), a = 1.6733, s = 1.0507   (Klambauer et al. 2017)
    softplus    log(1 + e^(b x)) / b                    phi' = sigmoid(b x) (Dugas et al. 2001)
    silu/swish  x sigmoid(x)                            phi' = s (1 + x (1 - s))
                                                        (Ramachandran et al. 2017)
    gelu        x Phi(x), Phi the normal CDF            phi' = Phi(x) + x N(x)
                                                        (Hendrycks & Gimpel 2016)
    gelu_tanh   x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi)
    mish        x tanh(softplus(x))                     (Misra 2019)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_C = 0.044715


def _sigmoid(x: Tensor) -> Tensor:
    # from e = exp(-|x|) on both sides: no overflow, no cancellation
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|); above the threshold it is z to float precision
    z = beta * x
    soft = (z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))) / beta
    return torch.where(z > threshold, x, soft)


def _phi_normal(x: Tensor) -> Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _Phi_normal(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable[[Tensor], Tensor]
    df: Callable[[Tensor], Tensor]
    reference: Callable[[Tensor], Tensor]  # the torch.nn.functional equivalent
    saturates: bool  # bounded on at least one side with a vanishing derivative


def _sig_f(x: Tensor) -> Tensor:
    return _sigmoid(x)


def _sig_df(x: Tensor) -> Tensor:
    s = _sigmoid(x)
    return s * _sigmoid(-x)  # s (1 - s) without the cancellation of 1 - s for large x


def _tanh_df(x: Tensor) -> Tensor:
    t = torch.tanh(x)
    return 1.0 - t * t


def _leaky(a: float) -> tuple[Callable, Callable]:
    return (
        lambda x: torch.where(x > 0, x, a * x),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, a)),
    )


def _elu_f(x: Tensor, a: float = 1.0) -> Tensor:
    return torch.where(x > 0, x, a * torch.expm1(x.clamp(max=0)))


def _elu_df(x: Tensor, a: float = 1.0) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), a * torch.exp(x.clamp(max=0)))


def _silu_f(x: Tensor) -> Tensor:
    return x * _sigmoid(x)


def _silu_df(x: Tensor) -> Tensor:
    s = _sigmoid(x)
    return s * (1.0 + x * _sigmoid(-x))


def _gelu_f(x: Tensor) -> Tensor:
    return x * _Phi_normal(x)


def _gelu_df(x: Tensor) -> Tensor:
    return _Phi_normal(x) + x * _phi_normal(x)


def _gelu_tanh_f(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x**3)))


def _gelu_tanh_df(x: Tensor) -> Tensor:
    t = torch.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x**3))
    dinner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner


def _mish_f(x: Tensor) -> Tensor:
    return x * torch.tanh(_softplus(x, threshold=math.inf))


def _mish_df(x: Tensor) -> Tensor:
    # d/dx [x tanh(sp(x))] = tanh(sp) + x sech^2(sp) sigmoid(x)
    t = torch.tanh(_softplus(x, threshold=math.inf))
    return t + x * (1.0 - t * t) * _sigmoid(x)


_leaky_f, _leaky_df = _leaky(0.01)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", _sig_f, _sig_df, torch.sigmoid, True),
        Activation("tanh", torch.tanh, _tanh_df, torch.tanh, True),
        Activation(
            "relu",
            lambda x: x.clamp(min=0),
            lambda x: (x > 0).to(x.dtype),
            torch.nn.functional.relu,
            False,
        ),
        Activation(
            "leaky_relu", _leaky_f, _leaky_df, torch.nn.functional.leaky_relu, False
        ),  # slope 0.01, torch's default
        Activation("elu", _elu_f, _elu_df, torch.nn.functional.elu, False),
        Activation(
            "selu",
            lambda x: SELU_SCALE * _elu_f(x, SELU_ALPHA),
            lambda x: SELU_SCALE * _elu_df(x, SELU_ALPHA),
            torch.nn.functional.selu,
            False,
        ),
        Activation(
            "softplus",
            _softplus,
            lambda x: torch.where(x > 20.0, torch.ones_like(x), _sigmoid(x)),
            torch.nn.functional.softplus,
            False,
        ),
        Activation("silu", _silu_f, _silu_df, torch.nn.functional.silu, False),
        Activation("gelu", _gelu_f, _gelu_df, torch.nn.functional.gelu, False),
        Activation(
            "gelu_tanh",
            _gelu_tanh_f,
            _gelu_tanh_df,
            lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
            False,
        ),
        Activation("mish", _mish_f, _mish_df, torch.nn.functional.mish, False),
    )
}
ALIASES = {"swish": "silu"}


def get_activation(name: str) -> Activation:
    key = ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        raise KeyError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]


def _autograd_function(act: Activation) -> type[torch.autograd.Function]:
    class _Fn(torch.autograd.Function):
        # forward and setup_context apart, so torch.func.vmap can batch it (an `Ensemble`)
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Tensor) -> Tensor:  # type: ignore[override]
            return act.f(x)

        @staticmethod
        def setup_context(ctx, inputs: tuple[Tensor], output: Tensor) -> None:
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
            (x,) = ctx.saved_tensors
            return grad * act.df(x)  # the chain rule with our own phi'

    _Fn.__name__ = f"{act.name}_fn"
    return _Fn


_FUNCTIONS = {name: _autograd_function(a) for name, a in ACTIVATIONS.items()}


def activate(name: str, x: Tensor) -> Tensor:
    """phi(x) with the hand-written derivative in the backward pass."""
    return _FUNCTIONS[get_activation(name).name].apply(x)


class ActivationModule(torch.nn.Module):
    """An activation as a layer. `ours=False` uses torch's kernel (proven equal in the tests)."""

    def __init__(self, name: str, ours: bool = True) -> None:
        super().__init__()
        self.act = get_activation(name)
        self.ours = ours

    def forward(self, x: Tensor) -> Tensor:
        return activate(self.act.name, x) if self.ours else self.act.reference(x)

    def extra_repr(self) -> str:
        return f"{self.act.name}, ours={self.ours}"


def mlp(sizes: list[int], activation: str, ours: bool = True) -> torch.nn.Sequential:
    """Linear layers with the named activation between them (none after the last)."""
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ActivationModule(activation, ours))
    return torch.nn.Sequential(*layers)
