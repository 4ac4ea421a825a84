"""A small neural-network library on the autograd engine: Linear, MLP, SGD.

Layers keep PyTorch's parameter layout (a Linear's weight is (out, in)), so the same
numbers load into `torch.nn.Linear` and the two can be compared step for step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from mlatlas.foundations.backprop.autograd import Tensor, linear, no_grad

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": Tensor.relu,
    "tanh": Tensor.tanh,
    "sigmoid": Tensor.sigmoid,
    "identity": lambda x: x,
}


class Module:
    """Finds its parameters by walking attributes: Tensors that require grad, sub-Modules,
    and lists of either."""

    def parameters(self) -> Iterator[Tensor]:
        for name in sorted(vars(self)):
            yield from _params(getattr(self, name))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        for name in sorted(vars(self)):
            yield from _named(getattr(self, name), f"{prefix}{name}")

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


def _params(v: object) -> Iterator[Tensor]:
    if isinstance(v, Tensor) and v.requires_grad:
        yield v
    elif isinstance(v, Module):
        yield from v.parameters()
    elif isinstance(v, (list, tuple)):
        for item in v:
            yield from _params(item)


def _named(v: object, name: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(v, Tensor) and v.requires_grad:
        yield name, v
    elif isinstance(v, Module):
        yield from v.named_parameters(prefix=f"{name}.")
    elif isinstance(v, (list, tuple)):
        for i, item in enumerate(v):
            yield from _named(item, f"{name}.{i}")


class Linear(Module):
    """y = x W^T + b, initialised like torch.nn.Linear: W, b ~ U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, bias: bool = True):
        bound = 1.0 / np.sqrt(n_in)
        self.weight = Tensor(rng.uniform(-bound, bound, (n_out, n_in)), requires_grad=True)
        self.bias = (
            Tensor(rng.uniform(-bound, bound, (n_out,)), requires_grad=True) if bias else None
        )

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)  # one node for x @ weight.T + bias


class MLP(Module):
    """Linear layers of the given sizes with `activation` between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], rng: np.random.Generator, activation: str = "relu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.layers = [Linear(a, b, rng) for a, b in itertools.pairwise(sizes)]
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = act(x)
        return x


class SGD:
    """theta <- theta - lr * v, with v <- momentum * v + grad (PyTorch's heavy-ball form)."""

    def __init__(self, params: Sequence[Tensor] | Iterator[Tensor], lr: float, momentum: float = 0):
        self.params = list(params)
        self.lr, self.momentum = lr, momentum
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)
        # lr * d is written into an array kept between steps: no temporary the size of the
        # parameter is allocated and freed per step (freed memory that glibc hands back to the
        # OS costs page faults on the next step)
        self._scaled: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                d = p.grad
                if self.momentum:
                    v = self.velocity[i]
                    if v is None:
                        v = self.velocity[i] = d.copy()
                    else:  # v <- momentum v + d, in the optimizer's own array
                        v *= self.momentum
                        v += d
                    d = v
                s = self._scaled[i]
                if s is None or s.shape != d.shape or s.dtype != d.dtype:
                    s = self._scaled[i] = np.empty_like(d)
                p.data -= np.multiply(d, self.lr, out=s)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
