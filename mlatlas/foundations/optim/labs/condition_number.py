"""Condition number: GD slows down like kappa, heavy ball like sqrt(kappa)."""

from __future__ import annotations

import math

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.foundations.optim.optimizers import SGD


def quadratic_rate(kappa: float, method: str, dim: int, max_steps: int, tol: float) -> dict:
    """Run GD or heavy ball with their optimal constant parameters on
    f(x) = x^T A x / 2, A = diag(linspace(1, kappa)), from x_0 = 1; return the measured
    linear rate (geometric mean of |x_{t+1}| / |x_t| over the second half) and steps to tol."""
    L, mu = kappa, 1.0
    eig = torch.linspace(mu, L, dim, dtype=torch.float64)
    x = torch.ones(dim, dtype=torch.float64, requires_grad=True)
    if method == "gd":
        opt = SGD([x], lr=2 / (L + mu))  # optimal step: rate (kappa-1)/(kappa+1)
    else:
        sl, sm = math.sqrt(L), math.sqrt(mu)
        beta = ((sl - sm) / (sl + sm)) ** 2  # Polyak's optimal momentum
        opt = SGD([x], lr=4 / (sl + sm) ** 2, momentum=beta)
    x0 = x.detach().norm().item()
    norms = [x0]
    for _ in range(max_steps):
        opt.zero_grad()
        x.grad = eig * x.detach()  # the gradient of x^T A x / 2, exactly
        opt.step()
        norms.append(x.detach().norm().item())
        if norms[-1] < tol * x0:
            break
    n = np.array(norms)
    half = len(n) // 2
    rate = float(np.exp(np.mean(np.diff(np.log(n[half:])))))
    return {"rate": rate, "steps": len(n) - 1, "norms": n}


@lab("optim", insights=["convergence guarantees"])
def condition_number(ctx: Lab) -> None:
    """Gradient descent slows down as kappa grows; momentum cuts the slowdown to sqrt(kappa).

    On a quadratic with eigenvalues in [mu, L], GD with step 2/(L+mu) contracts the error by
    (kappa-1)/(kappa+1) per step and heavy ball with Polyak's parameters by
    (sqrt(kappa)-1)/(sqrt(kappa)+1) (Polyak 1964; Nesterov 2004, ch. 2). So the steps to a
    fixed accuracy grow like kappa for GD and like sqrt(kappa) for heavy ball.

    Everything here is deterministic: exact gradients of a fixed quadratic from a fixed start,
    so no seed changes a number. The three results are therefore checks (measured value against
    a stated tolerance), not experiments over seeds.
    """
    cfg = ctx.config(
        kappas=per_scale(
            [10, 100], [10, 30, 100, 300, 1000], [10, 30, 100, 300, 1000, 3000, 10000]
        ),
        dim=100,
        tol=1e-8,
        max_steps=200000,
    )
    ctx.dataset(record("quadratic", dim=cfg.dim, eigenvalues="linspace(1, kappa)"))
    rows, curves = [], {}
    for kappa in ctx.progress(cfg.kappas, desc="kappa"):
        for method in ("gd", "heavy_ball"):
            r = quadratic_rate(kappa, method, cfg.dim, cfg.max_steps, cfg.tol)
            sk = math.sqrt(kappa)
            theory = (kappa - 1) / (kappa + 1) if method == "gd" else (sk - 1) / (sk + 1)
            rows.append(
                {
                    "kappa": kappa,
                    "method": method,
                    "measured_rate": r["rate"],
                    "theory_rate": theory,
                    "exponent_ratio": math.log(r["rate"]) / math.log(theory),
                    f"steps_to_{cfg.tol:g}": r["steps"],
                }
            )
            curves[(kappa, method)] = r["norms"]
            ctx.log(step=kappa, method=method, rate=r["rate"], theory=theory)
    ctx.table("rates", rows, note="exponent_ratio = log(measured) / log(theory); 1 is exact")

    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for (kappa, method), n in curves.items():
        if kappa in (cfg.kappas[0], cfg.kappas[-1]):
            ax[0, 0].semilogy(n / n[0], label=f"{method}, kappa={kappa}")
    ax[0, 0].set(title="error |x_t| / |x_0|", xlabel="step")
    ax[0, 0].legend(fontsize=7)
    steps_key = f"steps_to_{cfg.tol:g}"
    slopes = {}
    for method in ("gd", "heavy_ball"):
        ks = np.array([r["kappa"] for r in rows if r["method"] == method], dtype=float)
        st = np.array([r[steps_key] for r in rows if r["method"] == method], dtype=float)
        slopes[method] = float(np.polyfit(np.log(ks), np.log(st), 1)[0])
        ax[0, 1].loglog(ks, st, "o-", label=f"{method}: slope {slopes[method]:.2f}")
    ax[0, 1].set(title=f"steps to {cfg.tol:g}", xlabel="kappa")
    ax[0, 1].legend()
    ctx.figure("condition_number", fig, "Convergence of GD and heavy ball on quadratics.")
    ctx.metric("slope_gd", slopes["gd"])
    ctx.metric("slope_heavy_ball", slopes["heavy_ball"])

    worst = max(abs(r["exponent_ratio"] - 1) for r in rows)
    ctx.check(
        "Measured linear rates of GD and heavy ball match (kappa-1)/(kappa+1) and "
        "(sqrt(kappa)-1)/(sqrt(kappa)+1): log-rate within 10% of theory at every kappa",
        worst,
        direction="<=",
        bound=0.10,
        quantity="largest |log(measured rate) / log(theory rate) - 1| over kappas and methods",
    )
    ctx.check(
        "Steps to accuracy grow like kappa for GD (fitted log-log slope within 0.1 of 1)",
        abs(slopes["gd"] - 1),
        direction="<=",
        bound=0.1,
        quantity=f"|slope - 1| of log(steps to {cfg.tol:g}) on log(kappa); slope "
        f"{slopes['gd']:.4f}",
    )
    ctx.check(
        "Steps to accuracy grow like sqrt(kappa) for heavy ball (slope within 0.1 of 0.5)",
        abs(slopes["heavy_ball"] - 0.5),
        direction="<=",
        bound=0.1,
        quantity=f"|slope - 0.5| of log(steps to {cfg.tol:g}) on log(kappa); slope "
        f"{slopes['heavy_ball']:.4f}",
    )
