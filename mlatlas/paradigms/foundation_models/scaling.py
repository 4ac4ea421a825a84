r"""Scaling laws: fitting loss as a power law in parameters and tokens.

Kaplan et al. (2020) found that the test loss of a language model trained on enough data
falls as a power law in its non-embedding parameter count $N$,

$$L(N) = a\,N^{-\alpha} + c,$$

($\alpha_N \approx 0.076$ for their transformers on WebText2, written there without the
irreducible term $c$). Hoffmann et al. (2022, "Chinchilla", eq. 2) model parameters and
training tokens $D$ together,

$$L(N, D) = E + \frac{A}{N^{\alpha}} + \frac{B}{D^{\beta}},$$

and with the training compute $C \approx 6ND$ FLOPs (Kaplan et al. 2020, section 2.1) the
loss-minimising split of a budget $C$ is

$$N_{opt}(C) = G\left(\frac{C}{6}\right)^{\beta/(\alpha+\beta)},\quad
D_{opt}(C) = G^{-1}\left(\frac{C}{6}\right)^{\alpha/(\alpha+\beta)},\quad
G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)}$$

(Hoffmann et al. 2022, eq. 4). Both laws are fitted here by nonlinear least squares
(`scipy.optimize.least_squares`) from several starting points, keeping the best, because the
objective is not convex in the exponents. The interval for $\alpha$ is a profile interval:
for a fixed $\alpha$ the model $L = a x + c$ with $x = N^{-\alpha}$ is linear, so the residual
sum of squares $S(\alpha)$ minimised over $(a, c)$ has a closed form, and the 95% interval is
$\{\alpha : S(\alpha) \le S(\hat\alpha)\,(1 + F_{1, n-3}(0.95)/(n-3))\}$ (Bates & Watts 1988,
section 6.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from torch import nn

KAPLAN_ALPHA_N = 0.076  # Kaplan et al. 2020, eq. 1.1: L(N) = (N_c / N)^alpha_N
# Hoffmann et al. 2022, eq. 10 (approach 3): E = 1.69, A = 406.4, B = 410.7
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def non_embedding_params(model: nn.Module) -> int:
    """Parameters outside embedding tables (token and position), the $N$ of Kaplan et al.
    2020: embeddings grow with the vocabulary, not with what the model computes."""
    seen: set[int] = set()
    embed = 0
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            seen.add(id(m.weight))
            embed += m.weight.numel()
    total = 0
    for name, p in model.named_parameters():
        if id(p) in seen or name.split(".")[-1] == "table":
            continue  # tied head weights are the embedding; "table" is a learned position table
        total += p.numel()
    return total


def power_law(n: np.ndarray, a: float, alpha: float, c: float) -> np.ndarray:
    """$L(N) = a N^{-\\alpha} + c$."""
    return a * np.asarray(n, dtype=np.float64) ** (-alpha) + c


def chinchilla_law(
    n: np.ndarray, d: np.ndarray, e: float, a: float, b: float, alpha: float, beta: float
) -> np.ndarray:
    """$L(N, D) = E + A N^{-\\alpha} + B D^{-\\beta}$ (Hoffmann et al. 2022)."""
    n, d = np.asarray(n, dtype=np.float64), np.asarray(d, dtype=np.float64)
    return e + a * n ** (-alpha) + b * d ** (-beta)


def r_squared(y: np.ndarray, pred: np.ndarray) -> float:
    """$1 - \\sum (y - \\hat y)^2 / \\sum (y - \\bar y)^2$."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


@dataclass(frozen=True)
class PowerLawFit:
    a: float
    alpha: float
    c: float
    r2: float
    residuals: np.ndarray  # observed - fitted, in the order of the inputs

    def __call__(self, n: np.ndarray) -> np.ndarray:
        return power_law(n, self.a, self.alpha, self.c)


@dataclass(frozen=True)
class ChinchillaFit:
    e: float
    a: float
    b: float
    alpha: float
    beta: float
    r2: float
    residuals: np.ndarray

    def __call__(self, n: np.ndarray, d: np.ndarray) -> np.ndarray:
        return chinchilla_law(n, d, self.e, self.a, self.b, self.alpha, self.beta)

    def compute_optimal(self, c: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising the fitted loss at compute C = 6 N D (Hoffmann eq. 4)."""
        return compute_optimal(c, self.a, self.b, self.alpha, self.beta)


def compute_optimal(
    c: np.ndarray | float, a: float, b: float, alpha: float, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise $A N^{-\\alpha} + B D^{-\\beta}$ subject to $6ND = C$: setting the derivative
    in $N$ of $A N^{-\\alpha} + B (C/6N)^{-\\beta}$ to zero gives $\\alpha A N^{-\\alpha} =
    \\beta B D^{-\\beta}$, whence $N_{opt} = G (C/6)^{\\beta/(\\alpha+\\beta)}$."""
    g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
    flops = np.asarray(c, dtype=np.float64) / 6.0
    n_opt = g * flops ** (beta / (alpha + beta))
    return n_opt, flops / n_opt


def decade_slope(n: Sequence[float], loss: Sequence[float]) -> float:
    """Least-squares slope of loss on $\\log_{10} N$: nats per decade of parameters
    (negative when loss falls with size)."""
    return float(np.polyfit(np.log10(np.asarray(n, dtype=np.float64)), loss, 1)[0])


def equal_compute_pair(n: Sequence[float], steps: int, shrink: float = 8.0) -> tuple[int, int]:
    """An equal-compute comparison on a sweep of sizes trained for the same `steps` (the
    same tokens per step): the index of the size nearest $N_{max}/$shrink (on the log
    scale), and the step at which the largest model has spent that model's whole compute
    $C = 6ND$, ``round(steps * N_small / N_max)`` (at least 1): the two computes then agree
    up to the rounding to a whole step."""
    x = np.asarray(n, dtype=np.float64)
    small = int(np.argmin(np.abs(np.log(x / (x.max() / shrink)))))
    return small, max(1, round(steps * x[small] / x.max()))


def _linear_given_alpha(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """For fixed alpha, L = a N^-alpha + c is linear in (a, c): least squares in closed form.
    Returns (a, c, residual sum of squares)."""
    design = np.stack([x ** (-alpha), np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    rss = float(np.sum((y - design @ coef) ** 2))
    return float(coef[0]), float(coef[1]), rss


def fit_power_law(n: Sequence[float], loss: Sequence[float]) -> PowerLawFit:
    """Least-squares fit of $L = a N^{-\\alpha} + c$.

    The profile over alpha is searched on a grid first (each point an exact linear solve),
    then `least_squares` refines all three parameters from the best grid point; N is
    rescaled by its geometric mean so that `a` is of the order of the losses."""
    x = np.asarray(n, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if x.size < 4:
        raise ValueError(f"a 3-parameter power law needs at least 4 points, got {x.size}")
    scale = float(np.exp(np.log(x).mean()))
    xs = x / scale
    grid = np.linspace(0.005, 3.0, 600)
    rss = [_linear_given_alpha(xs, y, al)[2] for al in grid]
    alpha0 = float(grid[int(np.argmin(rss))])
    a0, c0, _ = _linear_given_alpha(xs, y, alpha0)
    sol = optimize.least_squares(
        lambda p: power_law(xs, p[0], p[1], p[2]) - y,
        x0=[a0, alpha0, c0],
        method="lm",
        xtol=1e-14,
        ftol=1e-14,
        gtol=1e-14,
    )
    a_s, alpha, c = (float(v) for v in sol.x)
    a = a_s * scale**alpha  # a_s (N/scale)^-alpha = a_s scale^alpha N^-alpha
    pred = power_law(x, a, alpha, c)
    return PowerLawFit(a, alpha, c, r_squared(y, pred), y - pred)


def signed_exponent(n: Sequence[float], loss: Sequence[float], alpha_max: float = 4.0) -> float:
    """The exponent of the best fit of $L = a N^{-\\alpha} + c$ with $\\alpha \\in (0,
    \\alpha_{max}]$ and $a$ of either sign, signed by $a$: positive when the fitted curve
    falls with N, negative when it rises, 0 when it is flat.

    The family is closed under reflection ($L \\to 2c - L$ flips the sign of $a$ only), so
    data rising in N give the negative of the exponent of their mirror image, and data with
    no dependence on N give a sign that is as likely + as -. The profile over alpha is
    searched on a grid (an exact linear solve per point) and refined between the grid
    neighbours of its minimum; a fit at the grid's edge returns the edge."""
    x = np.asarray(n, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if x.size < 4:
        raise ValueError(f"a 3-parameter power law needs at least 4 points, got {x.size}")
    xs = x / float(np.exp(np.log(x).mean()))
    grid = np.linspace(alpha_max / 400, alpha_max, 400)
    rss = np.array([_linear_given_alpha(xs, y, al)[2] for al in grid])
    i = int(np.argmin(rss))
    alpha = float(grid[i])
    refined = optimize.minimize_scalar(
        lambda al: _linear_given_alpha(xs, y, al)[2],
        bounds=(float(grid[max(i - 1, 0)]), float(grid[min(i + 1, grid.size - 1)])),
        method="bounded",
        options={"xatol": 1e-10},
    )
    if refined.fun < rss[i]:
        alpha = float(refined.x)
    a, _, _ = _linear_given_alpha(xs, y, alpha)
    amplitude = abs(a) * float(np.ptp(xs ** (-alpha)))  # the fitted curve's rise or fall
    if amplitude <= 1e-12 * max(1.0, float(np.abs(y).max())):
        return 0.0
    return float(np.sign(a) * alpha)


def profile_interval_alpha(
    n: Sequence[float], loss: Sequence[float], level: float = 0.95, grid_size: int = 2000
) -> tuple[float, float]:
    """Profile-likelihood interval for alpha of $L = a N^{-\\alpha} + c$ (Bates & Watts 1988):
    the alphas whose best residual sum of squares is within the F-threshold of the minimum.
    The ends are found on a grid around the estimate and refined by root finding; an end that
    reaches the grid edge (alpha in [0, 4]) is returned as that edge."""
    x = np.asarray(n, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    dof = x.size - 3
    if dof < 1:
        raise ValueError("a profile interval needs at least 4 points")
    xs = x / float(np.exp(np.log(x).mean()))
    best = fit_power_law(x, y)
    s_min = float(np.sum(best.residuals**2))
    limit = s_min * (1.0 + stats.f.ppf(level, 1, dof) / dof)

    def excess(al: float) -> float:
        return _linear_given_alpha(xs, y, al)[2] - limit

    lo_edge, hi_edge = 0.0, 4.0  # at alpha = 0 the fit is the constant c (lstsq handles it)
    ends = []
    for edge in (lo_edge, hi_edge):
        grid = np.linspace(best.alpha, edge, grid_size)
        vals = np.array([excess(al) for al in grid])
        outside = np.flatnonzero(vals > 0)
        if outside.size == 0:
            ends.append(edge)
            continue
        j = int(outside[0])
        ends.append(float(optimize.brentq(excess, grid[j - 1], grid[j], xtol=1e-12)))
    return ends[0], ends[1]


def fit_chinchilla(
    n: Sequence[float], d: Sequence[float], loss: Sequence[float], starts: int = 4
) -> ChinchillaFit:
    """Least-squares fit of $L = E + A N^{-\\alpha} + B D^{-\\beta}$, every parameter >= 0,
    from a grid of starting exponents (Hoffmann et al. 2022 also start from a grid, as the
    fit has local minima). N and D are rescaled by their geometric means for conditioning."""
    x = np.asarray(n, dtype=np.float64)
    t = np.asarray(d, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if x.size < 6:
        raise ValueError(f"a 5-parameter law needs at least 6 points, got {x.size}")
    sn, sd = float(np.exp(np.log(x).mean())), float(np.exp(np.log(t).mean()))
    xs, ts = x / sn, t / sd

    def resid(p: np.ndarray) -> np.ndarray:
        return chinchilla_law(xs, ts, *p) - y

    best = None
    for al in np.linspace(0.1, 1.5, starts):
        for be in np.linspace(0.1, 1.5, starts):
            # with the exponents fixed the law is linear in (E, A, B): start from that solve
            design = np.stack([np.ones_like(xs), xs ** (-al), ts ** (-be)], axis=1)
            lin, *_ = np.linalg.lstsq(design, y, rcond=None)
            # cross-entropy is >= 0, so E >= 0; A, B >= 0 keep loss falling in N and D
            x0 = np.clip([*lin, al, be], 1e-9, None)
            sol = optimize.least_squares(
                resid,
                x0=x0,
                bounds=(0.0, np.inf),
                method="trf",
                xtol=1e-15,
                ftol=1e-15,
                gtol=1e-15,
            )
            if best is None or sol.cost < best.cost:
                best = sol
    e, a_s, b_s, alpha, beta = (float(v) for v in best.x)
    a, b = a_s * sn**alpha, b_s * sd**beta
    pred = chinchilla_law(x, t, e, a, b, alpha, beta)
    return ChinchillaFit(e, a, b, alpha, beta, r_squared(y, pred), y - pred)
