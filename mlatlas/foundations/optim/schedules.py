"""Learning-rate schedules as closed-form functions of the step t (t = 0 is the first step).

    step          eta_t = eta_0 gamma^floor(t / s)
    exponential   eta_t = eta_0 gamma^t
    cosine        eta_t = eta_min + (eta_0 - eta_min) (1 + cos(pi t / T)) / 2
                  (Loshchilov & Hutter 2017)
    warmup+cosine linear from f eta_0 to eta_0 over w steps, then cosine over T - w
                  (Goyal et al. 2017)
    one-cycle     cosine (or linear) up from eta_max/d to eta_max over p T steps, then
                  down to eta_max/(d d_f) (Smith & Topin 2019)

`Scheduled` sets an optimizer's learning rate from such a function before every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer

Schedule = Callable[[int], float]


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    return lambda t: lr * gamma ** (t // step_size)


def exponential(lr: float, gamma: float) -> Schedule:
    return lambda t: lr * gamma**t


def cosine(lr: float, total: int, eta_min: float = 0.0) -> Schedule:
    return lambda t: eta_min + (lr - eta_min) * (1 + math.cos(math.pi * min(t, total) / total)) / 2


def warmup_cosine(
    lr: float, warmup: int, total: int, start_factor: float = 1 / 3, eta_min: float = 0.0
) -> Schedule:
    after = cosine(lr, total - warmup, eta_min)

    def f(t: int) -> float:
        if t < warmup:
            return lr * (start_factor + (1 - start_factor) * t / warmup)
        return after(t - warmup)

    return f


def one_cycle(
    max_lr: float,
    total: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
) -> Schedule:
    """torch's OneCycleLR as a function of t; `anneal_strategy` "cos" or "linear" (as there)."""
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', not {anneal_strategy!r}")
    initial = max_lr / div_factor
    final = initial / final_div_factor
    peak = pct_start * total - 1  # the step at which eta reaches max_lr

    def anneal(start: float, end: float, pct: float) -> float:
        if anneal_strategy == "linear":
            return start + (end - start) * pct
        return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))

    def f(t: int) -> float:
        if t <= peak:
            return anneal(initial, max_lr, t / peak)
        return anneal(max_lr, final, (t - peak) / (total - 1 - peak))

    return f


def constant(lr: float) -> Schedule:
    return lambda t: lr


class Scheduled:
    """Sets every param group's lr to schedule(t) before step t; call `step()` after
    `optimizer.step()` (the same protocol as torch's schedulers)."""

    def __init__(self, optimizer: Optimizer, schedule: Schedule) -> None:
        self.optimizer, self.schedule, self.t = optimizer, schedule, 0
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule(self.t)

    def step(self) -> None:
        self.t += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]
