"""Reverse-mode automatic differentiation over NumPy arrays.

Every operation records its inputs and a function that maps the gradient of its output to
the gradients of its inputs (a vector-Jacobian product). `backward` visits the graph in
reverse topological order and applies the chain rule

    dL/dx = sum over uses y of x:  (dy/dx)^T dL/dy

so the whole gradient costs about one more pass than the forward computation
(Rumelhart, Hinton & Williams 1986; Linnainmaa 1970 for reverse-mode differentiation).

Broadcasting needs care: when an input of shape (3,) was broadcast to (4, 3), its
gradient is the (4, 3) gradient summed over the broadcast axis (`unbroadcast`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

_GRAD_ENABLED = True


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block no graph is recorded: for evaluation and for parameter updates."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (leading and size-1 axes)."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _as_array(x: Any, dtype: np.dtype | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=dtype)
    if arr.dtype.kind in "iub" and dtype is None:
        arr = arr.astype(np.float64)
    return arr


def _lift(other: Any, like: Tensor) -> Tensor:
    """`other` as a Tensor; a Python number takes `like`'s dtype, so that float32 graphs stay
    float32 (NumPy 2 would promote them through a float64 0-d array)."""
    if isinstance(other, Tensor):
        return other
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return Tensor(np.asarray(other, dtype=like.data.dtype))
    return Tensor(other)


Backward = Callable[[np.ndarray], tuple[np.ndarray | None, ...]]


class Tensor:
    """An n-dimensional array that remembers how it was computed."""

    __array_priority__ = 100  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        _parents: tuple[Tensor, ...] = (),
        _backward: Backward | None = None,
        _op: str = "",
    ) -> None:
        self.data = _as_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._parents = _parents
        self._backward = _backward
        self._op = _op
        self._retain = False

    # construction -----------------------------------------------------------------
    @staticmethod
    def _make(data: np.ndarray, parents: tuple[Tensor, ...], backward: Backward, op: str) -> Tensor:
        needs = _GRAD_ENABLED and any(p.requires_grad for p in parents)
        if not needs:
            return Tensor(data)
        return Tensor(data, True, parents, backward, op)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return float(self.data)

    def detach(self) -> Tensor:
        return Tensor(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{flag})"

    def __len__(self) -> int:
        return len(self.data)

    # elementwise arithmetic ---------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def back(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return unbroadcast(g, self.shape), unbroadcast(g, o.shape)

        return Tensor._make(self.data + o.data, (self, o), back, "add")

    __radd__ = __add__

    def __neg__(self) -> Tensor:
        return Tensor._make(-self.data, (self,), lambda g: (-g,), "neg")

    def __sub__(self, other: Any) -> Tensor:
        return self + (-_lift(other, self))

    def __rsub__(self, other: Any) -> Tensor:
        return _lift(other, self) + (-self)

    def __mul__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def back(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # d(ab)/da = b, d(ab)/db = a
            return unbroadcast(g * o.data, self.shape), unbroadcast(g * self.data, o.shape)

        return Tensor._make(self.data * o.data, (self, o), back, "mul")

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Tensor:
        o = _lift(other, self)

        def back(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            ga = g / o.data
            gb = -g * self.data / (o.data * o.data)
            return unbroadcast(ga, self.shape), unbroadcast(gb, o.shape)

        return Tensor._make(self.data / o.data, (self, o), back, "div")

    def __rtruediv__(self, other: Any) -> Tensor:
        return _lift(other, self) / self

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            e = exponent
            out = self.data**e.data

            def back(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                # d(a^e)/da = e a^(e-1);  d(a^e)/de = a^e log a
                ga = g * e.data * self.data ** (e.data - 1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ge = g * out * np.log(self.data)
                return unbroadcast(ga, self.shape), unbroadcast(ge, e.shape)

            return Tensor._make(out, (self, e), back, "pow")
        p = float(exponent)
        return Tensor._make(
            self.data**p, (self,), lambda g: (g * p * self.data ** (p - 1),), f"pow{p:g}"
        )

    # linear algebra -----------------------------------------------------------------
    def __matmul__(self, other: Any) -> Tensor:
        """Matrix product with NumPy semantics: 1-D operands are promoted, batch axes broadcast."""
        o = _lift(other, self)
        a = self.data[None, :] if self.ndim == 1 else self.data
        b = o.data[:, None] if o.ndim == 1 else o.data
        out = a @ b

        def back(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g2 = g.reshape(out.shape)
            # C = A B:  dL/dA = dL/dC B^T,  dL/dB = A^T dL/dC
            ga = g2 @ np.swapaxes(b, -1, -2)
            gb = np.swapaxes(a, -1, -2) @ g2
            ga = unbroadcast(ga, a.shape).reshape(self.shape)
            gb = unbroadcast(gb, b.shape).reshape(o.shape)
            return ga, gb

        result = out
        if self.ndim == 1:
            result = result.squeeze(-2)
        if o.ndim == 1:
            result = result.squeeze(-1)
        return Tensor._make(result, (self, o), back, "matmul")

    def __rmatmul__(self, other: Any) -> Tensor:
        return Tensor(other) @ self

    # reductions ---------------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        def back(g: np.ndarray) -> tuple[np.ndarray]:
            if self.ndim == 0:  # NumPy accepts axis=0 on a 0-d array; nothing to expand
                return (np.asarray(g).reshape(()),)
            if not keepdims and axis is not None:
                g = np.expand_dims(g, axis)
            return (np.broadcast_to(g, self.shape).copy(),)

        return Tensor._make(self.data.sum(axis=axis, keepdims=keepdims), (self,), back, "sum")

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        n = self.size if axis is None else np.prod([self.shape[a] for a in np.atleast_1d(axis)])
        return self.sum(axis=axis, keepdims=keepdims) / float(n)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum; the gradient is shared equally among tied maxima (as torch.amax does)."""
        m = self.data.max(axis=axis, keepdims=True)

        def back(g: np.ndarray) -> tuple[np.ndarray]:
            if not keepdims and axis is not None and self.ndim > 0:
                g = np.expand_dims(g, axis)
            mask = (self.data == m).astype(self.data.dtype)
            return (g * mask / mask.sum(axis=axis, keepdims=True),)

        out = m if keepdims else (m.reshape(()) if axis is None else np.squeeze(m, axis=axis))
        return Tensor._make(out, (self,), back, "max")

    def logsumexp(self, axis: int = -1, keepdims: bool = False) -> Tensor:
        """log sum_i exp(x_i), computed as m + log sum_i exp(x_i - m) with m = max x so that
        exp never overflows; its gradient is softmax(x)."""
        m = self.data.max(axis=axis, keepdims=True)
        e = np.exp(self.data - m)
        s = e.sum(axis=axis, keepdims=True)
        out = m + np.log(s)

        def back(g: np.ndarray) -> tuple[np.ndarray]:
            if not keepdims:
                g = np.expand_dims(g, axis)
            return (g * e / s,)

        return Tensor._make(out if keepdims else np.squeeze(out, axis), (self,), back, "lse")

    # shape --------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        new = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        return Tensor._make(
            self.data.reshape(new), (self,), lambda g: (g.reshape(self.shape),), "reshape"
        )

    def transpose(self, *axes: int) -> Tensor:
        ax = axes if axes else tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(ax))
        return Tensor._make(
            self.data.transpose(ax), (self,), lambda g: (g.transpose(inverse),), "transpose"
        )

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        idx = index.data.astype(np.int64) if isinstance(index, Tensor) else index

        def back(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros_like(self.data)
            np.add.at(full, idx, g)  # add.at, not +=: repeated indices must accumulate
            return (full,)

        return Tensor._make(self.data[idx], (self,), back, "index")

    # elementwise functions --------------------------------------------------------------
    def exp(self) -> Tensor:
        out = np.exp(self.data)
        return Tensor._make(out, (self,), lambda g: (g * out,), "exp")

    def log(self) -> Tensor:
        return Tensor._make(np.log(self.data), (self,), lambda g: (g / self.data,), "log")

    def tanh(self) -> Tensor:
        out = np.tanh(self.data)
        return Tensor._make(out, (self,), lambda g: (g * (1.0 - out * out),), "tanh")

    def sigmoid(self) -> Tensor:
        """sigma(x) = 1 / (1 + e^-x), evaluated from e = exp(-|x|) so that nothing overflows
        or cancels: sigma = 1/(1+e) for x >= 0, e/(1+e) for x < 0, and
        sigma'(x) = sigma(x) sigma(-x) = e / (1+e)^2 on both sides."""
        e = np.exp(-np.abs(self.data))
        out = np.where(self.data >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        slope = e / (1.0 + e) ** 2
        return Tensor._make(out, (self,), lambda g: (g * slope,), "sigmoid")

    def relu(self) -> Tensor:
        # derivative 0 at x = 0, the convention torch uses
        mask = self.data > 0
        return Tensor._make(self.data * mask, (self,), lambda g: (g * mask,), "relu")

    # autodiff ---------------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.size != 1:
                raise RuntimeError("backward() without a gradient needs a scalar output")
            grad = np.ones_like(self.data)
        order = _topological(self)
        grads: dict[int, np.ndarray] = {id(self): _as_array(grad, self.data.dtype)}
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None or node._retain:
                node.grad = g.copy() if node.grad is None else node.grad + g
            if node._backward is None:  # a leaf
                continue
            for parent, pg in zip(node._parents, node._backward(g), strict=True):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = grads[key] + pg if key in grads else pg

    def retain_grad(self) -> Tensor:
        """Keep this intermediate node's gradient in `.grad` after backward (leaves always do)."""
        self._retain = True
        return self

    def zero_grad(self) -> None:
        self.grad = None


def _topological(root: Tensor) -> list[Tensor]:
    """Nodes reachable from `root`, each after all of its parents (iterative DFS)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node._parents:
            if p.requires_grad and id(p) not in seen:
                stack.append((p, False))
    return order


def tensor(data: Any, requires_grad: bool = False) -> Tensor:
    return Tensor(data, requires_grad=requires_grad)


def log_softmax(logits: Tensor, axis: int = -1) -> Tensor:
    """log softmax(x)_i = x_i - logsumexp(x)."""
    return logits - logits.logsumexp(axis=axis, keepdims=True)


def cross_entropy(logits: Tensor, targets: np.ndarray) -> Tensor:
    """Mean negative log-likelihood of integer `targets` under softmax(`logits`).

    L = (1/N) sum_n [ logsumexp(z_n) - z_n[y_n] ]; its gradient w.r.t. z_n is
    (softmax(z_n) - onehot(y_n)) / N.
    """
    y = np.asarray(targets, dtype=np.int64)
    n = logits.shape[0]
    picked = logits[np.arange(n), y]
    return (logits.logsumexp(axis=-1) - picked).mean()


def mse(pred: Tensor, target: Any) -> Tensor:
    diff = pred - target
    return (diff * diff).mean()
