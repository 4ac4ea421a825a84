"""First-order optimizers written from their update equations.

Each is a `torch.optim.Optimizer`, so it drops into any training loop, and each follows
PyTorch's conventions (where the learning rate and weight decay enter), so that the tests can
show step-for-step equality with `torch.optim`. g_t is the gradient at step t, eta the lr.

    SGD         x <- x - eta g
    heavy ball  b <- mu b + g;  x <- x - eta b                (Polyak 1964)
    Nesterov    b <- mu b + g;  x <- x - eta (g + mu b)       (Nesterov 1983; Sutskever et al. 2013)
    AdaGrad     s <- s + g^2;   x <- x - eta g / (sqrt(s) + eps)          (Duchi et al. 2011)
    RMSprop     s <- a s + (1-a) g^2;  x <- x - eta g / (sqrt(s) + eps)  (Tieleman & Hinton 2012)
    Adam        m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
                x <- x - eta m_hat / (sqrt(v_hat) + eps), m_hat = m/(1-b1^t), v_hat = v/(1-b2^t)
                                                                             (Kingma & Ba 2015)
    AdamW       x <- x - eta lambda x, then the Adam step on g alone    (Loshchilov & Hutter 2019)

Weight decay `weight_decay` in SGD, AdaGrad, RMSprop and Adam is L2: it adds lambda x to g
before everything else, so adaptive methods rescale it too; AdamW decouples it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer

Params = Iterable[torch.Tensor] | Iterable[dict]


class SGD(Optimizer):
    """SGD with optional heavy-ball or Nesterov momentum and L2 weight decay."""

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        super().__init__(
            params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
        )

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if wd == 0 else p.grad + wd * p
                if mu:
                    state = self.state[p]
                    if "buf" not in state:
                        state["buf"] = g.clone()  # b_1 = g_1
                    else:
                        state["buf"].mul_(mu).add_(g)  # b <- mu b + g
                    g = g + mu * state["buf"] if group["nesterov"] else state["buf"]
                p.add_(g, alpha=-lr)
        return loss


class Adagrad(Optimizer):
    """Per-coordinate step eta / sqrt(sum of squared gradients so far)."""

    def __init__(
        self, params: Params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if group["weight_decay"] == 0 else p.grad + group["weight_decay"] * p
                s = self.state[p].setdefault("sum", torch.zeros_like(p))
                s.addcmul_(g, g)  # s <- s + g^2
                p.addcdiv_(g, s.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss


class RMSprop(Optimizer):
    """Per-coordinate step eta / sqrt(exponential average of squared gradients)."""

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)
        )

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            a = group["alpha"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if group["weight_decay"] == 0 else p.grad + group["weight_decay"] * p
                state = self.state[p]
                s = state.setdefault("square_avg", torch.zeros_like(p))
                s.mul_(a).addcmul_(g, g, value=1 - a)  # s <- a s + (1 - a) g^2
                denom = s.sqrt().add_(group["eps"])
                if group["momentum"] > 0:
                    buf = state.setdefault("buf", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).addcdiv_(g, denom)
                    p.add_(buf, alpha=-group["lr"])
                else:
                    p.addcdiv_(g, denom, value=-group["lr"])
        return loss


class Adam(Optimizer):
    """Adam; `weight_decay` is L2 (added to the gradient, then rescaled like it)."""

    decoupled = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd and self.decoupled:
                    p.mul_(1 - lr * wd)  # AdamW: shrink x directly, outside the adaptive scaling
                elif wd:
                    g = g + wd * p  # Adam + L2: the decay is divided by sqrt(v) below
                state = self.state[p]
                if not state:
                    state["t"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)  # m <- b1 m + (1 - b1) g
                v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
                bias1, bias2 = 1 - b1**t, 1 - b2**t
                denom = (v.sqrt() / bias2**0.5).add_(eps)  # sqrt(v_hat) + eps
                p.addcdiv_(m, denom, value=-lr / bias1)  # x <- x - eta m_hat / denom
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay: x <- (1 - eta lambda) x before the Adam step."""

    decoupled = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


OPTIMIZERS = {
    "sgd": lambda p, lr, **kw: SGD(p, lr, **kw),
    "momentum": lambda p, lr, **kw: SGD(p, lr, momentum=kw.pop("momentum", 0.9), **kw),
    "nesterov": lambda p, lr, **kw: SGD(
        p, lr, momentum=kw.pop("momentum", 0.9), nesterov=True, **kw
    ),
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}
