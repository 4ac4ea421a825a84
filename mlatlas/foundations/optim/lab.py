"""Labs of topic 4: condition number, saddle points, adaptive rates, Adam+L2 vs AdamW,
schedules, convergence of SGD.

All optimizers here are this topic's own (proven equal to torch.optim in the tests).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.core import Lab, bootstrap_ci, lab, new_figure
from mlatlas.core.data import image_classification, load_adult, record
from mlatlas.core.stats import mean_ci
from mlatlas.core.train import accuracy, batches_for_steps, make_mlp
from mlatlas.foundations.optim.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from mlatlas.foundations.optim.schedules import (
    Scheduled,
    constant,
    exponential,
    one_cycle,
    warmup_cosine,
)

# ------------------------------------------------------------------------------------
# condition number
# ------------------------------------------------------------------------------------


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
    """
    cfg = ctx.config(
        kappas=([10, 100], [10, 30, 100, 300, 1000], [10, 30, 100, 300, 1000, 3000, 10000]),
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

    worst = max(abs(r["exponent_ratio"] - 1) for r in rows)
    ctx.claim(
        "Measured linear rates of GD and heavy ball match (kappa-1)/(kappa+1) and "
        "(sqrt(kappa)-1)/(sqrt(kappa)+1): log-rate within 10% of theory at every kappa",
        value=worst,
        holds=worst <= 0.10,
        detail="value: largest |log(measured)/log(theory) - 1|",
    )
    ctx.claim(
        "Steps to accuracy grow like kappa for GD (fitted log-log slope within 0.1 of 1)",
        value=slopes["gd"],
        holds=abs(slopes["gd"] - 1) <= 0.1,
    )
    ctx.claim(
        "Steps to accuracy grow like sqrt(kappa) for heavy ball (slope within 0.1 of 0.5)",
        value=slopes["heavy_ball"],
        holds=abs(slopes["heavy_ball"] - 0.5) <= 0.1,
    )


# ------------------------------------------------------------------------------------
# saddle points
# ------------------------------------------------------------------------------------


def saddle_grad(p: torch.Tensor) -> torch.Tensor:
    """Gradient of f(x, y) = x^2/2 + y^4/4 - y^2/2: a saddle at 0, minima at (0, +-1)."""
    x, y = p[..., 0], p[..., 1]
    return torch.stack([x, y**3 - y], dim=-1)


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


@lab("optim", insights=["Escape from saddle points"])
def saddle_points(ctx: Lab) -> None:
    """Exact gradient descent can stall at a saddle; a little noise makes it escape.

    f(x, y) = x^2/2 + y^4/4 - y^2/2 has a saddle at the origin. Started on its stable manifold
    (y = 0), GD never leaves it. With gradient noise of scale sigma, y grows like
    (1 + eta)^t sigma near the saddle, so the escape time grows like log(1/sigma) / log(1 + eta)
    (Ge et al. 2015; Jin et al. 2017). Second part: every optimizer on Rosenbrock's valley.
    """
    cfg = ctx.config(
        lr=0.05,
        steps=(400, 2000, 5000),
        sigmas=(
            [1e-2, 1e-6],
            [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8],
            [10.0**-k for k in range(1, 13)],
        ),
        runs=(50, 400, 2000),
        escape_at=0.5,
        rosenbrock_steps=(300, 3000, 10000),
    )
    ctx.dataset(record("saddle_quartic"))
    # 1. exact GD on the stable manifold
    p = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = SGD([p], lr=cfg.lr)
    for _ in range(cfg.steps):
        p.grad = saddle_grad(p.detach())
        opt.step()
    stuck = p.detach().clone()
    ctx.metric("exact_gd_final_point", stuck.tolist())
    ctx.claim(
        f"Exact GD started at (1, 0) converges to the saddle and stays: after {cfg.steps} steps "
        "|y| = 0 and |x| < 1e-6",
        value=float(stuck.abs().max()),
        holds=stuck[1].item() == 0.0 and abs(stuck[0].item()) < 1e-6,
    )

    # 2. noisy GD: many independent runs at once, one row per run
    gen = torch.Generator().manual_seed(ctx.seed)
    rows, times = [], {}
    for sigma in ctx.progress(cfg.sigmas, desc="noise"):
        pts = torch.zeros(cfg.runs, 2, dtype=torch.float64)
        pts[:, 0] = 1.0
        pts.requires_grad_(True)
        opt = SGD([pts], lr=cfg.lr)
        escaped = torch.full((cfg.runs,), -1, dtype=torch.long)
        for t in range(1, cfg.steps + 1):
            noise = torch.randn(pts.shape, generator=gen, dtype=torch.float64) * sigma
            pts.grad = saddle_grad(pts.detach()) + noise
            opt.step()
            newly = (pts.detach()[:, 1].abs() > cfg.escape_at) & (escaped < 0)
            escaped[newly] = t
        ok = escaped[escaped > 0].double()
        times[sigma] = ok.numpy()
        rows.append(
            {
                "sigma": sigma,
                "escaped": f"{len(ok)}/{cfg.runs}",
                "mean_escape_step": float(ok.mean()) if len(ok) else float("nan"),
                "theory_log(1/sigma)/log(1+eta)": math.log(1 / sigma) / math.log(1 + cfg.lr),
            }
        )
        ctx.log(step=None, sigma=sigma, escaped=len(ok))
    ctx.table("escape", rows, note=f"{cfg.runs} runs per sigma, escape when |y| > {cfg.escape_at}")
    all_escaped = all(len(times[s]) == cfg.runs for s in cfg.sigmas)
    ctx.claim(
        f"With any noise from {min(cfg.sigmas):g} to {max(cfg.sigmas):g}, every run escapes the "
        f"saddle within {cfg.steps} steps",
        value=float(min(len(times[s]) for s in cfg.sigmas) / cfg.runs),
        holds=all_escaped,
        detail="value: smallest share of runs that escaped",
    )
    logs = np.log(1 / np.array(cfg.sigmas))
    means = np.array([np.mean(times[s]) if len(times[s]) else np.nan for s in cfg.sigmas])
    slope = float(np.polyfit(logs, means, 1)[0])
    theory = 1 / math.log(1 + cfg.lr)
    ctx.claim(
        "Escape time grows linearly in log(1/sigma), with slope within 15% of 1/log(1+eta)",
        value=slope,
        holds=abs(slope / theory - 1) <= 0.15,
        detail=f"theory slope {theory:.2f} steps per e-fold of 1/sigma",
    )

    # 3. every optimizer on Rosenbrock, from the same start
    settings = {
        "sgd": lambda q: SGD(q, lr=1e-3),
        "momentum": lambda q: SGD(q, lr=1e-3, momentum=0.9),
        "nesterov": lambda q: SGD(q, lr=1e-3, momentum=0.9, nesterov=True),
        "adagrad": lambda q: Adagrad(q, lr=0.5),
        "rmsprop": lambda q: RMSprop(q, lr=1e-2),
        "adam": lambda q: Adam(q, lr=5e-2),
        "adamw": lambda q: AdamW(q, lr=5e-2, weight_decay=1e-2),
    }
    paths, rb_rows = {}, []
    for name, make in settings.items():
        q = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
        o = make([q])
        path = [q.detach().clone()]
        for _ in range(cfg.rosenbrock_steps):
            o.zero_grad()
            rosenbrock(q).backward()
            o.step()
            path.append(q.detach().clone())
        paths[name] = torch.stack(path).numpy()
        rb_rows.append(
            {
                "optimizer": name,
                "final_f": rosenbrock(q.detach()).item(),
                "distance_to_(1,1)": float(np.hypot(*(paths[name][-1] - 1))),
            }
        )
    ctx.table("rosenbrock", rb_rows, note=f"{cfg.rosenbrock_steps} steps from (-1.5, 2)")

    fig, ax = new_figure(1, 3, size=(15, 4.2))
    gx, gy = np.meshgrid(np.linspace(-1.6, 1.6, 200), np.linspace(-1.6, 1.6, 200))
    fxy = gx**2 / 2 + gy**4 / 4 - gy**2 / 2
    ax[0, 0].contour(gx, gy, fxy, levels=25, linewidths=0.6)
    ax[0, 0].plot([1, stuck[0]], [0, stuck[1]], "k.-", label="exact GD (stalls)")
    ax[0, 0].set(title="saddle f = x^2/2 + y^4/4 - y^2/2", xlabel="x", ylabel="y")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].plot(logs, means, "o-", label="measured")
    ax[0, 1].plot(logs, means[0] + theory * (logs - logs[0]), "--", label="slope 1/log(1+eta)")
    ax[0, 1].set(title="escape time", xlabel="log(1/sigma)", ylabel="steps")
    ax[0, 1].legend()
    rx, ry = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    rz = (1 - rx) ** 2 + 100 * (ry - rx**2) ** 2
    ax[0, 2].contour(rx, ry, np.log10(rz + 1e-3), levels=20, linewidths=0.5, colors="gray")
    for name, path in paths.items():
        ax[0, 2].plot(path[:, 0], path[:, 1], lw=1, label=name)
    ax[0, 2].plot(1, 1, "k*", ms=10)
    ax[0, 2].set(xlim=(-2, 2), ylim=(-1, 3), title="Rosenbrock, every optimizer")
    ax[0, 2].legend(fontsize=6)
    ctx.figure("saddles", fig, "A saddle, escape times, and optimizer paths on Rosenbrock.")


# ------------------------------------------------------------------------------------
# adaptive rates
# ------------------------------------------------------------------------------------


def adult_features(standardize: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Adult's 6 numeric columns (raw scales from 1 to ~1e6) plus one-hot categoricals."""
    d = load_adult("train")
    num = d.numeric.copy()
    if standardize:
        num = (num - num.mean(0)) / num.std(0)
    onehots = [np.eye(len(v))[d.categorical[:, j]] for j, v in enumerate(d.categories.values())]
    x = np.concatenate([num, *onehots], axis=1)
    from mlatlas.core.data import REGISTRY

    return torch.tensor(x), torch.tensor(d.y, dtype=torch.float64), REGISTRY["adult"].record()


def scaled_synthetic(standardize: bool, rng: np.random.Generator, n: int = 4000):
    """Logistic data whose 8 features have scales 1e0 ... 1e5 (the smoke-scale stand-in)."""
    scales = 10.0 ** np.linspace(0, 5, 8)
    z = rng.standard_normal((n, 8))
    w = rng.standard_normal(8)
    y = (z @ w + 0.5 * rng.standard_normal(n) > 0).astype(float)
    x = z if standardize else z * scales
    rec = record("scaled_logistic", n=n, scales="10^linspace(0, 5, 8)")
    return torch.tensor(x), torch.tensor(y), rec


@lab("optim", insights=["learning rate scheduling", "convergence guarantees"])
def adaptive_rates(ctx: Lab) -> None:
    """Badly scaled features: Adam adapts per coordinate, SGD needs the features rescaled.

    A logistic regression whose features differ in scale by orders of magnitude has a
    Hessian with a huge condition number: SGD's single step size must be small enough for the
    largest feature and is then far too small for the rest. Adam divides each coordinate's
    step by its own gradient scale. Each optimizer gets its best learning rate from the same
    log-spaced grid, on raw and on standardized features.
    """
    cfg = ctx.config(
        data=("synthetic", "adult", "adult"),
        steps=(200, 2000, 10000),
        batch=256,
        lrs=[10.0**k for k in range(-7, 1)],
        seeds=(1, 2, 3),
    )
    results: dict[tuple[str, str], list[float]] = {}
    rows = []
    for standardize in ctx.progress([False, True], desc="feature scaling"):
        if cfg.data == "adult":
            x, y, rec = adult_features(standardize)
        else:
            x, y, rec = scaled_synthetic(standardize, np.random.default_rng(ctx.seed))
        ctx.dataset(rec)
        for name in ("sgd", "adam"):
            best = (math.inf, None)
            for lr in cfg.lrs:
                finals = []
                for s in range(cfg.seeds):
                    torch.manual_seed(ctx.seed + s)
                    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
                    opt = SGD([w], lr=lr) if name == "sgd" else Adam([w], lr=lr)
                    rng = np.random.default_rng(ctx.seed + s)
                    for idx in batches_for_steps(len(x), cfg.batch, cfg.steps, rng):
                        opt.zero_grad()
                        logits = x[idx] @ w[:-1] + w[-1]
                        F.binary_cross_entropy_with_logits(logits, y[idx]).backward()
                        opt.step()
                    with torch.no_grad():
                        full = F.binary_cross_entropy_with_logits(x @ w[:-1] + w[-1], y).item()
                    finals.append(full if math.isfinite(full) else math.inf)
                mean = float(np.mean(finals))
                if mean < best[0]:
                    best = (mean, lr, finals)
            scaling = "standardized" if standardize else "raw"
            results[(name, scaling)] = best[2]
            rows.append(
                {"optimizer": name, "features": scaling, "best_lr": best[1], "loss": best[0]}
            )
            ctx.log(step=None, optimizer=name, features=scaling, loss=best[0], lr=best[1])
    ctx.table(
        "best_losses",
        rows,
        note=f"training log-loss after {cfg.steps} steps at the best lr of {cfg.lrs}, "
        f"mean over {cfg.seeds} seeds",
    )
    loss = {(r["optimizer"], r["features"]): r["loss"] for r in rows}
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for j, name in enumerate(("sgd", "adam")):
        ax[0, 0].bar(
            np.arange(2) + 0.38 * j,
            [loss[(name, "raw")], loss[(name, "standardized")]],
            0.36,
            label=name,
        )
    ax[0, 0].set_xticks(np.arange(2) + 0.19, ["raw", "standardized"])
    ax[0, 0].set(ylabel="training log-loss", title=f"best lr, {cfg.steps} steps")
    ax[0, 0].legend()
    ctx.figure("adaptive", fig, "Best achievable loss of SGD and Adam, raw vs standardized.")
    ctx.claim(
        "On raw, badly scaled features Adam (best lr) reaches a lower loss than SGD (best lr)",
        value=loss[("sgd", "raw")] - loss[("adam", "raw")],
        holds=loss[("adam", "raw")] < loss[("sgd", "raw")],
        insight="convergence guarantees",
        seeds=cfg.seeds,
        detail="value: SGD loss - Adam loss",
    )
    gain_sgd = loss[("sgd", "raw")] / loss[("sgd", "standardized")]
    gain_adam = loss[("adam", "raw")] / loss[("adam", "standardized")]
    ctx.claim(
        "Standardizing the features helps SGD more than Adam (ratio of raw to standardized loss)",
        value=gain_sgd / gain_adam,
        holds=gain_sgd > gain_adam,
        insight="learning rate scheduling",
        seeds=cfg.seeds,
        detail=f"SGD raw/std {gain_sgd:.3g}, Adam raw/std {gain_adam:.3g}",
    )


# ------------------------------------------------------------------------------------
# Adam + L2 vs AdamW
# ------------------------------------------------------------------------------------


@lab("optim", insights=["learning rate scheduling"])
def adam_l2_vs_adamw(ctx: Lab) -> None:
    """With L2 in Adam, weights with large gradients are barely decayed; AdamW decays all alike.

    Adam + L2 adds lambda w to the gradient and then divides by sqrt(v), so the decay each
    weight feels is lambda w / sqrt(v): weak where gradients are large. AdamW shrinks w by
    (1 - eta lambda) every step, whatever the gradients (Loshchilov & Hutter 2019). Here
    weights receive pure-noise gradients of scales from 1e-3 to 1e1 plus the decay, so
    any shrinkage comes from the decay alone.
    """
    cfg = ctx.config(
        scales=[1e-3, 1e-2, 1e-1, 1.0, 10.0],
        per_scale=(100, 1000, 10000),
        steps=(200, 2000, 10000),
        lr=1e-3,
        weight_decay=0.5,
    )
    ctx.dataset(record("noise_gradients", scales=cfg.scales))
    scales = torch.tensor(cfg.scales, dtype=torch.float64).repeat_interleave(cfg.per_scale)
    gen = torch.Generator().manual_seed(ctx.seed)
    shrink = {}
    for name, make in (
        ("adam_l2", lambda p: Adam(p, lr=cfg.lr, weight_decay=cfg.weight_decay)),
        ("adamw", lambda p: AdamW(p, lr=cfg.lr, weight_decay=cfg.weight_decay)),
    ):
        w = torch.ones_like(scales, requires_grad=True)
        opt = make([w])
        for _ in ctx.progress(cfg.steps, desc=name):
            w.grad = scales * torch.randn(scales.shape, generator=gen, dtype=torch.float64)
            opt.step()
        # log of the remaining magnitude, averaged per gradient scale
        lw = torch.log(w.detach().abs().clamp_min(1e-300)).reshape(len(cfg.scales), -1).mean(1)
        shrink[name] = lw.numpy()
    expected = cfg.steps * math.log(1 - cfg.lr * cfg.weight_decay)
    rows = [
        {
            "gradient_scale": s,
            "log|w|_adam_l2": float(shrink["adam_l2"][i]),
            "log|w|_adamw": float(shrink["adamw"][i]),
            "log|w|_decay_only": expected,
        }
        for i, s in enumerate(cfg.scales)
    ]
    ctx.table("shrinkage", rows, note=f"w starts at 1; {cfg.steps} steps; lr {cfg.lr}")
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    ax[0, 0].semilogx(cfg.scales, -shrink["adam_l2"], "o-", label="Adam + L2")
    ax[0, 0].semilogx(cfg.scales, -shrink["adamw"], "s-", label="AdamW")
    ax[0, 0].axhline(-expected, color="gray", ls="--", label="(1 - eta lambda)^T")
    ax[0, 0].set(
        xlabel="gradient scale", ylabel="-log |w_T|  (shrinkage)", title="weight decay felt"
    )
    ax[0, 0].legend()
    ctx.figure("decay", fig, "How much each weight shrinks, by its gradient scale.")
    spread_w = float(np.max(np.abs(shrink["adamw"] / expected - 1)))
    ctx.claim(
        "AdamW shrinks every weight by (1 - eta lambda)^T whatever its gradient scale (log-"
        "shrinkage within 5% of that at every scale)",
        value=spread_w,
        holds=spread_w <= 0.05,
        detail="value: largest relative deviation of log|w_T| from T log(1 - eta lambda)",
    )
    ratio = float(shrink["adam_l2"][0] / shrink["adam_l2"][-1])
    ctx.claim(
        f"Adam + L2 decays weights with small gradients (scale {cfg.scales[0]:g}) at least 10x "
        f"more than weights with large gradients (scale {cfg.scales[-1]:g})",
        value=ratio,
        holds=ratio >= 10,
        detail="value: ratio of log-shrinkages, smallest scale / largest scale",
    )


# ------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------


@lab("optim", insights=["learning rate scheduling"])
def schedules(ctx: Lab) -> None:
    """LR range test, then constant vs warmup+cosine vs one-cycle at equal budget.

    The range test (Smith 2017) raises the lr exponentially during a short run: the loss
    falls, flattens, then blows up; a good peak lr sits somewhat below the blow-up. The three
    schedules then train the same MLP for the same number of steps with that peak lr.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        n_train=(None, 20000, None),
        hidden=[256, 256],
        batch=128,
        range_steps=(100, 300, 500),
        range_lrs=[1e-4, 10.0],
        steps=(150, 1500, 6000),
        seeds=(1, 3, 5),
        momentum=0.9,
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    sizes = [data.x_train.shape[1], *cfg.hidden, data.n_classes]

    # LR range test
    torch.manual_seed(ctx.seed)
    model = make_mlp(sizes)
    lo, hi = cfg.range_lrs
    gamma = (hi / lo) ** (1 / (cfg.range_steps - 1))
    opt = SGD(model.parameters(), lr=lo, momentum=cfg.momentum)
    sched = Scheduled(opt, exponential(lo, gamma))
    lrs, losses, smooth = [], [], None
    rng = np.random.default_rng(ctx.seed)
    for idx in batches_for_steps(len(data.x_train), cfg.batch, cfg.range_steps, rng):
        opt.zero_grad()
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        loss.backward()
        opt.step()
        lrs.append(sched.get_last_lr()[0])
        v = loss.item()
        smooth = v if smooth is None else 0.9 * smooth + 0.1 * v
        losses.append(smooth)
        sched.step()
        if not math.isfinite(v) or v > 4 * losses[0]:
            break
    best_i = int(np.nanargmin(losses))
    peak = lrs[best_i] / 10  # a decade below the minimum of the smoothed loss
    ctx.metric("range_test_min_loss_lr", lrs[best_i])
    ctx.metric("chosen_peak_lr", peak)
    blew_up = not math.isfinite(losses[-1]) or losses[-1] > 2 * min(losses)
    ctx.claim(
        "The LR range test finds a minimum: the smoothed loss falls, then rises past 2x its "
        "minimum before the largest lr",
        value=lrs[best_i],
        holds=blew_up and best_i > 0,
        detail=f"value: lr at the smoothed-loss minimum; chosen peak lr {peak:.3g}",
    )

    # equal-budget comparison
    plans = {
        "constant": constant(peak),
        "warmup_cosine": warmup_cosine(peak, cfg.steps // 10, cfg.steps, start_factor=0.1),
        "one_cycle": one_cycle(peak, cfg.steps),
    }
    accs: dict[str, list[float]] = {k: [] for k in plans}
    for name, plan in ctx.progress(list(plans.items()), desc="schedules"):
        for s in range(cfg.seeds):
            torch.manual_seed(ctx.seed + 100 + s)
            model = make_mlp(sizes)
            opt = SGD(model.parameters(), lr=peak, momentum=cfg.momentum)
            sch = Scheduled(opt, plan)
            rng = np.random.default_rng(ctx.seed + 100 + s)
            for idx in batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, rng):
                opt.zero_grad()
                F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                opt.step()
                sch.step()
            accs[name].append(accuracy(model, data.x_test, data.y_test))
        ctx.log(step=None, schedule=name, test_acc=float(np.mean(accs[name])))
    rows = []
    for name, a in accs.items():
        lo_, hi_ = bootstrap_ci(a)
        rows.append(
            {"schedule": name, "test_acc": float(np.mean(a)), "ci_low": lo_, "ci_high": hi_}
        )
    ctx.table("schedules", rows, note=f"{cfg.steps} steps, peak lr {peak:.3g}, {cfg.seeds} seeds")

    fig, ax = new_figure(1, 2, size=(10, 3.6))
    ax[0, 0].semilogx(lrs, losses)
    ax[0, 0].axvline(peak, color="gray", ls="--", label=f"chosen peak {peak:.2g}")
    ax[0, 0].set(title="LR range test", xlabel="lr", ylabel="smoothed loss")
    ax[0, 0].legend()
    for name, plan in plans.items():
        ax[0, 1].plot([plan(t) for t in range(cfg.steps)], label=name)
    ax[0, 1].set(title="schedules", xlabel="step", ylabel="lr")
    ax[0, 1].legend()
    ctx.figure("schedules", fig, "The LR range test and the three schedules compared.")
    for name in ("warmup_cosine", "one_cycle"):
        diff = np.array(accs[name]) - np.array(accs["constant"])
        mean, (dlo, dhi) = mean_ci(diff)
        ctx.claim(
            f"At equal budget {name.replace('_', ' + ' if name == 'warmup_cosine' else '-')} "
            "beats a constant lr in test accuracy",
            value=mean,
            holds=dlo > 0,
            interval=(dlo, dhi),
            seeds=cfg.seeds,
            detail="value: mean accuracy difference to constant, paired by seed",
        )


# ------------------------------------------------------------------------------------
# convergence of SGD
# ------------------------------------------------------------------------------------


@lab("optim", insights=["convergence guarantees", "learning rate scheduling"])
def convergence(ctx: Lab) -> None:
    """Constant-step SGD stalls at a noise floor proportional to eta; a 1/t step reaches O(1/t).

    On a mu-strongly convex problem with gradient noise of variance s^2, SGD with constant
    step eta converges to a ball with E|x - x*|^2 ~ eta s^2 / (2 mu), while eta_t = 1/(mu (t +
    t0)) gives E|x_t - x*|^2 = O(1/t) (Robbins & Monro 1951; Moulines & Bach 2011).
    The problem: least squares on fixed Gaussian data, one example per step, many runs in
    parallel to estimate the expectation.
    """
    cfg = ctx.config(
        dim=10,
        n=1000,
        noise=0.5,
        steps=(2000, 20000, 200000),
        runs=(50, 200, 500),
        etas=[0.02, 0.01],
    )
    rng = np.random.default_rng(ctx.seed)
    a = torch.tensor(rng.standard_normal((cfg.n, cfg.dim)))
    x_true = torch.tensor(rng.standard_normal(cfg.dim))
    b = a @ x_true + cfg.noise * torch.tensor(rng.standard_normal(cfg.n))
    x_star = torch.linalg.lstsq(a, b).solution  # the empirical risk minimiser
    h = a.T @ a / cfg.n
    mu = torch.linalg.eigvalsh(h).min().item()
    ctx.dataset(record("least_squares", n=cfg.n, dim=cfg.dim, noise=cfg.noise))
    gen = torch.Generator().manual_seed(ctx.seed)
    checkpoints = np.unique(np.logspace(1, math.log10(cfg.steps), 40).astype(int))
    curves: dict[str, np.ndarray] = {}
    plans = {f"constant {e}": constant(e) for e in cfg.etas}
    t0 = 2.0 / (mu * max(cfg.etas))  # start the 1/t schedule no larger than the constant step
    plans["1/(mu (t + t0))"] = lambda t: 1.0 / (mu * (t + t0))
    for name, plan in ctx.progress(list(plans.items()), desc="schedules"):
        x = torch.zeros(cfg.runs, cfg.dim, dtype=torch.float64, requires_grad=True)
        opt = SGD([x], lr=plan(0))
        sch = Scheduled(opt, plan)
        errs = []
        for t in range(1, cfg.steps + 1):
            i = torch.randint(0, cfg.n, (cfg.runs,), generator=gen)
            ai, bi = a[i], b[i]
            resid = (ai * x.detach()).sum(1) - bi
            x.grad = ai * resid[:, None]  # gradient of (a_i.x - b_i)^2 / 2, one example per run
            opt.step()
            sch.step()
            if t in checkpoints:
                errs.append(((x.detach() - x_star) ** 2).sum(1).mean().item())
        curves[name] = np.array(errs)
        ctx.log(step=cfg.steps, schedule=name, final_error=errs[-1])
    ts = checkpoints
    late = ts >= ts[-1] / 10
    rows = []
    for name, e in curves.items():
        slope = float(np.polyfit(np.log(ts[late]), np.log(e[late]), 1)[0])
        rows.append(
            {"schedule": name, "final_E|x-x*|^2": float(e[-1]), "late_log_log_slope": slope}
        )
    ctx.table("convergence", rows, note=f"{cfg.runs} runs; slope fitted over the last decade")
    fig, ax = new_figure(1, 1, size=(6, 4))
    for name, e in curves.items():
        ax[0, 0].loglog(ts, e, label=name)
    ax[0, 0].loglog(ts, curves["1/(mu (t + t0))"][-1] * ts[-1] / ts, "k:", label="1/t reference")
    ax[0, 0].set(xlabel="step", ylabel="E|x_t - x*|^2", title="SGD on least squares")
    ax[0, 0].legend(fontsize=7)
    ctx.figure("convergence", fig, "Noise floor of constant steps vs O(1/t) of decaying steps.")
    slope_1t = next(r["late_log_log_slope"] for r in rows if r["schedule"].startswith("1/"))
    ctx.claim(
        "With eta_t = 1/(mu (t + t0)) the error falls as O(1/t): late log-log slope in "
        "[-1.2, -0.8]",
        value=slope_1t,
        holds=-1.2 <= slope_1t <= -0.8,
        insight="convergence guarantees",
        seeds=cfg.runs,
    )
    e_big, e_small = curves[f"constant {cfg.etas[0]}"], curves[f"constant {cfg.etas[1]}"]
    floor_ratio = float(e_big[late].mean() / e_small[late].mean())
    eta_ratio = cfg.etas[0] / cfg.etas[1]
    ctx.claim(
        f"Constant steps stall at a floor proportional to eta: the floors of eta = {cfg.etas[0]} "
        f"and {cfg.etas[1]} differ by their ratio {eta_ratio:g} (within 25%)",
        value=floor_ratio,
        holds=abs(floor_ratio / eta_ratio - 1) <= 0.25,
        insight="learning rate scheduling",
        seeds=cfg.runs,
    )
    bias_end = float(((x_star) ** 2).sum()) * (t0 / (cfg.steps + t0)) ** 2
    ctx.note(
        f"Late slope of the 1/t schedule: {slope_1t:.2f}. Its initial-error term decays like "
        f"(t0/(t+t0))^2 (about {bias_end:.2g} at the last step, t0 = {t0:.0f}); while that term "
        "dominates, the error falls faster than 1/t, which O(1/t) as an upper bound allows."
    )
    ctx.claim(
        "By the last step the 1/t schedule is below both constant-step floors",
        value=float(curves["1/(mu (t + t0))"][-1]),
        holds=curves["1/(mu (t + t0))"][-1] < min(e_big[-1], e_small[-1]),
        insight="learning rate scheduling",
        seeds=cfg.runs,
    )
