"""Labs of topic 2: saturation, training dynamics, dead units, inductive bias.

Smoke scale uses scikit-learn's digits (no download); default and full use Fashion-MNIST or
MNIST from the dataset registry.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.core import Lab, bootstrap_ci, lab, new_figure
from mlatlas.core.data import FUNCTIONS_1D, image_classification, record
from mlatlas.core.stats import geometric_mean_ci, mean_ci
from mlatlas.core.train import accuracy, batches_for_steps
from mlatlas.foundations.activations.functions import ACTIVATIONS, get_activation, mlp

SATURATING = [n for n, a in ACTIVATIONS.items() if a.saturates]
NON_SATURATING = [n for n, a in ACTIVATIONS.items() if not a.saturates]


def lecun_normal_(model: torch.nn.Module, generator: torch.Generator) -> None:
    """W ~ N(0, 1/fan_in), b = 0 (LeCun et al. 1998): the same init for every activation."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, 1.0 / math.sqrt(m.in_features), generator=generator)
                m.bias.zero_()


def hidden_preactivations(model: torch.nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-activations z_l of every hidden layer, for input x."""
    out, h = [], x
    layers = list(model)
    for i, layer in enumerate(layers):
        h = layer(h)
        if isinstance(layer, torch.nn.Linear) and i < len(layers) - 1:
            out.append(h)
    return out


# ------------------------------------------------------------------------------------
# saturation
# ------------------------------------------------------------------------------------


@lab("activations", insights=["Saturation problems", "gradient preservation"])
def saturation(ctx: Lab) -> None:
    """Where derivatives vanish, and what that does to gradients in a deep net.

    sigma'(x) <= 1/4 and tanh'(x) <= 1, both going to 0 as |x| grows; ReLU-type functions
    keep phi' = 1 on half the line. Backpropagation multiplies by phi'(z) at every layer, so a
    deep sigmoid net loses the gradient on its way to the first layer. The lab measures
    (1) the derivative bounds, (2) per-layer gradient norms at init with the same LeCun-normal
    init for every activation, and (3) the share of saturated units while a sigmoid and a
    tanh net train.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        depth=(6, 12, 24),
        width=(64, 128, 256),
        seeds=(2, 4, 8),
        train_steps=(60, 600, 3000),
        batch=128,
        lr=0.05,
        saturated_below=0.1,
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=10000, n_test=2000)
    ctx.dataset(data.record)
    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    bounds = []
    for name, act in ACTIVATIONS.items():
        d = act.df(x)
        core = (x.abs() <= 6).to(torch.float64)
        flat = ((d.abs() < 0.01).to(torch.float64) * core).sum() / core.sum()
        bounds.append(
            {
                "activation": name,
                "max_derivative": d.max().item(),
                "min_derivative": d.min().item(),
                "share_of_[-6,6]_with_|phi'|<0.01": flat.item(),
            }
        )
    ctx.table("derivative_bounds", bounds, note="on a grid of 20001 points in [-10, 10]")

    # (2) per-layer weight-gradient norms at init ---------------------------------------
    xb, yb = data.x_train[: cfg.batch], data.y_train[: cfg.batch]
    sizes = [xb.shape[1]] + [cfg.width] * cfg.depth + [data.n_classes]
    norms: dict[str, np.ndarray] = {}
    for name in ctx.progress(list(ACTIVATIONS), desc="init gradients"):
        runs = []
        for s in ctx.seeds(cfg.seeds):
            model = mlp(sizes, name)
            lecun_normal_(model, torch.Generator().manual_seed(s))
            model.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            lin = [m for m in model if isinstance(m, torch.nn.Linear)]
            runs.append([m.weight.grad.norm().item() for m in lin[: cfg.depth]])
        norms[name] = np.array(runs)
    rows = []
    ratio = {}
    for name, g in norms.items():
        r = g[:, 0] / g[:, -1]
        ratio[name] = r
        rows.append(
            {
                "activation": name,
                "grad_layer1": float(g[:, 0].mean()),
                f"grad_layer{cfg.depth}": float(g[:, -1].mean()),
                "ratio_1_to_L": float(np.exp(np.log(r).mean())),
            }
        )
    ctx.table("gradient_by_layer_at_init", rows, note=f"LeCun-normal init, {cfg.seeds} seeds")

    # (3) saturation during training --------------------------------------------------------
    share_curves: dict[str, list[tuple[int, float]]] = {}
    train_sizes = [xb.shape[1], cfg.width, cfg.width, cfg.width, data.n_classes]
    xe = data.x_test[:1000]
    for name in ("sigmoid", "tanh"):
        torch.manual_seed(ctx.seed)
        model = mlp(train_sizes, name)
        lecun_normal_(model, torch.Generator().manual_seed(ctx.seed))
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
        act = get_activation(name)
        peak = act.df(torch.zeros(1)).item()  # both peak at 0

        def saturated_share(model: torch.nn.Sequential = model, act=act, peak=peak) -> float:
            with torch.no_grad():
                zs = hidden_preactivations(model, xe)
            return float(
                np.mean([(act.df(z) < cfg.saturated_below * peak).float().mean() for z in zs])
            )

        curve = [(0, saturated_share())]
        batches = batches_for_steps(len(data.x_train), cfg.batch, cfg.train_steps, ctx.rng)
        for step, idx in enumerate(batches, 1):
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            if step % max(1, cfg.train_steps // 20) == 0:
                curve.append((step, saturated_share()))
        share_curves[name] = curve
        ctx.log(step=cfg.train_steps, activation=name, saturated_share=curve[-1][1])
        ctx.metric(f"saturated_share_{name}_start", curve[0][1])
        ctx.metric(f"saturated_share_{name}_end", curve[-1][1])

    fig, ax = new_figure(1, 3, size=(14, 3.6))
    for name, act in ACTIVATIONS.items():
        if name in ("sigmoid", "tanh", "relu", "gelu", "selu", "softplus"):
            ax[0, 0].plot(x.numpy(), act.df(x).numpy(), label=name)
    ax[0, 0].set(xlim=(-6, 6), title="derivatives phi'(x)", xlabel="x")
    ax[0, 0].legend(fontsize=7)
    for i, (name, g) in enumerate(norms.items()):
        style = "o-" if i < 10 else "o--"  # 11 lines, 10 colours in the cycle
        ax[0, 1].semilogy(np.arange(1, cfg.depth + 1), g.mean(0), style, ms=2, label=name)
    ax[0, 1].set(title=f"||dL/dW_l|| at init, depth {cfg.depth}", xlabel="layer")
    ax[0, 1].legend(fontsize=6, ncol=2)
    for name, curve in share_curves.items():
        steps, shares = zip(*curve, strict=True)
        ax[0, 2].plot(steps, shares, "o-", ms=3, label=name)
    ax[0, 2].set(title=f"share of units with phi' < {cfg.saturated_below} max", xlabel="step")
    ax[0, 2].legend()
    ctx.figure(
        "saturation", fig, "Derivatives, gradients by layer at init, saturation in training."
    )

    v, ci = geometric_mean_ci(ratio["sigmoid"])
    ctx.claim(
        f"With the same LeCun-normal init, sigmoid's layer-1 gradient is below 1e-3 of its "
        f"layer-{cfg.depth} gradient",
        value=v,
        holds=ci[1] < 1e-3,
        insight="Saturation problems",
        interval=ci,
        seeds=cfg.seeds,
    )
    worst = min(NON_SATURATING, key=lambda n: np.log(ratio[n]).mean())
    gap = float(np.exp(np.log(ratio[worst]).mean() - np.log(ratio["sigmoid"]).mean()))
    ctx.claim(
        "Every non-saturating activation keeps at least 10x more of the gradient at layer 1 "
        "(relative to the last hidden layer) than sigmoid",
        value=gap,
        holds=gap >= 10,
        insight="gradient preservation",
        seeds=cfg.seeds,
        detail=f"value: smallest ratio over non-saturating activations ({worst}) / sigmoid's",
    )
    v, ci = geometric_mean_ci(ratio["selu"])
    ctx.claim(
        f"SELU, with the LeCun-normal init it was designed for (Klambauer et al. 2017), keeps "
        f"layer 1's gradient within a factor 10 of layer {cfg.depth}'s",
        value=v,
        holds=ci[0] > 0.1 and ci[1] < 10,
        insight="gradient preservation",
        interval=ci,
        seeds=cfg.seeds,
    )
    start, end = share_curves["sigmoid"][0][1], share_curves["sigmoid"][-1][1]
    ctx.claim(
        f"Training with SGD pushes sigmoid units into saturation: the share with "
        f"sigma'(z) < {cfg.saturated_below} x 1/4 is higher after {cfg.train_steps} steps "
        "than at init",
        value=end - start,
        holds=end > start,
        insight="Saturation problems",
        detail=f"share at init {start:.3f}, after training {end:.3f} (one seed)",
    )


# ------------------------------------------------------------------------------------
# training dynamics
# ------------------------------------------------------------------------------------


@lab("activations", insights=["gradient preservation", "Saturation problems"])
def training_dynamics(ctx: Lab) -> None:
    """The same deep MLP trained with each activation: speed and final accuracy.

    Identical architecture, init (PyTorch's default), data order and optimizer (SGD with
    momentum); only the activation changes. Steps to a target test accuracy measure how
    fast the gradient signal reaches every layer.
    """
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(None, 20000, None),
        depth=(3, 6, 8),
        width=(64, 128, 256),
        steps=(150, 1000, 10000),
        batch=128,
        lr=0.05,
        momentum=0.9,
        seeds=(1, 2, 3),
        target=(0.8, 0.8, 0.85),
        eval_every=(25, 50, 250),
        ours=True,
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    sizes = [data.x_train.shape[1]] + [cfg.width] * cfg.depth + [data.n_classes]
    x_eval, y_eval = data.x_test[:2000], data.y_test[:2000]
    results: dict[str, list[dict]] = {}
    curves: dict[str, list[tuple[int, float]]] = {}
    jobs = [(n, s) for n in ACTIVATIONS for s in range(cfg.seeds)]
    for name, s in ctx.progress(jobs, desc="activations"):
        torch.manual_seed(ctx.seed + s)
        model = mlp(sizes, name, ours=cfg.ours)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        rng = np.random.default_rng(ctx.seed + s)
        reached, curve = math.inf, []
        for step, idx in enumerate(
            batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, rng), 1
        ):
            opt.zero_grad()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
            if step % cfg.eval_every == 0 or step == cfg.steps:
                acc = accuracy(model, x_eval, y_eval)
                curve.append((step, acc))
                if acc >= cfg.target and reached == math.inf:
                    reached = step
        final = accuracy(model, data.x_test, data.y_test)
        results.setdefault(name, []).append({"steps_to_target": reached, "test_acc": final})
        if s == 0:
            curves[name] = curve
        ctx.log(step=cfg.steps, activation=name, seed=s, test_acc=final, steps_to_target=reached)

    rows = []
    for name, res in results.items():
        accs = [r["test_acc"] for r in res]
        reach = [r["steps_to_target"] for r in res]
        lo, hi = bootstrap_ci(accs)
        rows.append(
            {
                "activation": name,
                "median_steps_to_target": float(np.median(reach)),
                "reached_in_runs": f"{sum(math.isfinite(r) for r in reach)}/{len(reach)}",
                "test_acc": float(np.mean(accs)),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    ctx.table(
        "activations",
        rows,
        note=f"{cfg.dataset}, depth {cfg.depth} x width {cfg.width}, {cfg.steps} SGD steps, "
        f"target {cfg.target:.0%} test accuracy; inf = never reached",
    )
    fig, ax = new_figure(1, 1, size=(7, 4))
    for i, (name, curve) in enumerate(curves.items()):
        steps, accs = zip(*curve, strict=True)
        ls = ":" if i >= 10 else ("--" if name in SATURATING else "-")
        ax[0, 0].plot(steps, accs, label=name, ls=ls, color=f"C{i % 10}")
    ax[0, 0].axhline(cfg.target, color="gray", lw=0.8)
    ax[0, 0].set(title="test accuracy during training (seed 0)", xlabel="step", ylabel="accuracy")
    ax[0, 0].legend(fontsize=7, ncol=2)
    ctx.figure("curves", fig, "Test accuracy during training, one line per activation.")

    med = {r["activation"]: r["median_steps_to_target"] for r in rows}
    fastest_saturating = min(med[n] for n in SATURATING)
    slowest_modern = max(med[n] for n in NON_SATURATING)
    ctx.claim(
        "Sigmoid is the slowest: its median steps to the target exceed those of every "
        "non-saturating activation",
        value=med["sigmoid"],
        holds=all(med["sigmoid"] > med[n] for n in NON_SATURATING),
        insight="Saturation problems",
        seeds=cfg.seeds,
        detail=f"sigmoid {med['sigmoid']}, slowest non-saturating {slowest_modern}",
    )
    ctx.claim(
        "Zero-centred tanh reaches the target in fewer steps than sigmoid (LeCun et al. 1998)",
        value=med["tanh"],
        holds=med["tanh"] < med["sigmoid"],
        insight="Saturation problems",
        seeds=cfg.seeds,
        detail=f"tanh {med['tanh']}, sigmoid {med['sigmoid']} median steps",
    )
    acc = {r["activation"]: r["test_acc"] for r in rows}
    spread = max(acc[n] for n in NON_SATURATING) - min(acc[n] for n in NON_SATURATING)
    ctx.claim(
        "The non-saturating activations end within 2 accuracy points of each other",
        value=spread,
        holds=spread <= 0.02,
        insight="gradient preservation",
        seeds=cfg.seeds,
    )
    ctx.metric("fastest_saturating_steps", fastest_saturating)
    ctx.note(
        f"Activations ran with {'our hand-written derivatives' if cfg.ours else 'torch kernels'}."
    )


# ------------------------------------------------------------------------------------
# dead units
# ------------------------------------------------------------------------------------


@lab("activations", insights=["gradient preservation"])
def dead_units(ctx: Lab) -> None:
    """ReLU units that never activate after high-learning-rate training, and the fix.

    A ReLU unit whose pre-activation is negative for every input has phi' = 0 everywhere:
    no gradient reaches its weights, so it cannot recover. Large updates can push units
    there. Leaky ReLU (slope 0.01 below zero) and GELU keep a gradient for negative inputs.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        n_train=(None, 20000, None),
        depth=3,
        width=256,
        steps=(150, 1000, 5000),
        batch=64,
        low_lr=0.01,
        high_lr=0.5,  # the edge of stability: at lr 1, 2 and 4 this net diverges on MNIST
        seeds=(2, 3, 5),
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    sizes = [data.x_train.shape[1]] + [cfg.width] * cfg.depth + [data.n_classes]
    x_probe = data.x_test[:2000]

    def never_active_share(model: torch.nn.Sequential) -> tuple[float, float]:
        """(share over all hidden layers, share in layer 1); NaN if training diverged."""
        with torch.no_grad():
            zs = hidden_preactivations(model, x_probe)
        if any(not torch.isfinite(z).all() for z in zs):
            return math.nan, math.nan  # a NaN is never <= 0: it must not count as alive
        per_layer = [(z <= 0).all(dim=0).float().mean().item() for z in zs]
        return float(np.mean(per_layer)), per_layer[0]

    rows, shares = [], {}
    jobs = [(a, lr) for a in ("relu", "leaky_relu", "gelu") for lr in (cfg.low_lr, cfg.high_lr)]
    for name, lr in ctx.progress(jobs, desc="runs"):
        per_seed = []
        for s in range(cfg.seeds):
            torch.manual_seed(ctx.seed + s)
            model = mlp(sizes, name)
            at_init = never_active_share(model)[0]
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            rng = np.random.default_rng(ctx.seed + s)
            for idx in batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, rng):
                opt.zero_grad()
                F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                opt.step()
            share, first = never_active_share(model)
            acc = accuracy(model, data.x_test, data.y_test)
            if math.isfinite(share):
                per_seed.append(share)
            rows.append(
                {
                    "activation": name,
                    "lr": lr,
                    "seed": s,
                    "never_active_at_init": at_init,
                    "never_active_after": share,
                    "never_active_layer1": first,
                    "diverged": not math.isfinite(share),
                    "test_acc": acc,
                }
            )
            ctx.log(step=cfg.steps, activation=name, lr=lr, seed=s, never_active=share)
        shares[(name, lr)] = np.array(per_seed)
    ctx.table(
        "never_active_units",
        rows,
        note=f"share of hidden units with z <= 0 on all {len(x_probe)} held-out inputs; "
        "diverged runs are excluded from the claims",
    )
    fig, ax = new_figure(1, 1, size=(6, 3.6))
    names = ["relu", "leaky_relu", "gelu"]
    for j, lr in enumerate((cfg.low_lr, cfg.high_lr)):
        means = [shares[(n, lr)].mean() for n in names]
        ax[0, 0].bar(np.arange(3) + 0.38 * j, means, width=0.36, label=f"lr {lr}")
    ax[0, 0].set_xticks(np.arange(3) + 0.19, names)
    ax[0, 0].set(ylabel="share of never-active units", title=f"after {cfg.steps} SGD steps")
    ax[0, 0].legend()
    ctx.figure("dead_units", fig, "Never-active hidden units after low- and high-LR training.")

    n_pair = min(len(shares[("relu", cfg.high_lr)]), len(shares[("relu", cfg.low_lr)]))
    if n_pair == 0:
        raise RuntimeError(f"every ReLU run diverged at lr {cfg.high_lr}: lower high_lr")
    mean, (lo, hi) = mean_ci(
        shares[("relu", cfg.high_lr)][:n_pair] - shares[("relu", cfg.low_lr)][:n_pair]
    )
    ctx.claim(
        f"High-LR training (lr {cfg.high_lr}) leaves more dead ReLU units than low-LR training "
        f"(lr {cfg.low_lr})",
        value=mean,
        holds=lo > 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail="value: mean difference in the dead share (high - low), paired by seed",
    )
    relu_high = shares[("relu", cfg.high_lr)].mean()
    others = {n: shares[(n, cfg.high_lr)].mean() for n in ("leaky_relu", "gelu")}
    ctx.claim(
        "After the same high-LR training, Leaky ReLU and GELU have fewer never-active units "
        "than ReLU",
        value=float(max(others.values())),
        holds=all(v < relu_high for v in others.values()),
        seeds=cfg.seeds,
        detail=f"ReLU {relu_high:.3f}, Leaky {others['leaky_relu']:.3f}, GELU {others['gelu']:.3f}",
    )


# ------------------------------------------------------------------------------------
# inductive bias
# ------------------------------------------------------------------------------------


def count_pieces(y: np.ndarray, x: np.ndarray, tol: float = 1e-6) -> int:
    """Linear pieces of a sampled function: 1 + the number of slope changes above `tol`."""
    slopes = np.diff(y) / np.diff(x)
    return 1 + int(np.sum(np.abs(np.diff(slopes)) > tol * max(1.0, np.abs(slopes).max())))


@lab("activations", insights=["inductive biases"])
def inductive_bias(ctx: Lab) -> None:
    """ReLU nets are piecewise linear and extrapolate linearly; tanh nets flatten out.

    A ReLU network is a continuous piecewise-linear map (each unit adds kinks where its
    pre-activation crosses zero), so beyond its last kink it continues as a straight line;
    a tanh network is smooth and its units saturate as |x| grows.
    """
    cfg = ctx.config(
        function="wiggle",
        n_train=64,
        width=32,
        depth=2,
        steps=(300, 3000, 10000),
        lr=0.01,
        seeds=(2, 5, 10),
        activations=["relu", "tanh", "gelu"],
    )
    f = FUNCTIONS_1D[cfg.function]
    ctx.dataset(record(f"function_1d:{cfg.function}", n_train=cfg.n_train, domain=[-1, 1]))
    grid = np.linspace(-3, 3, 6001)
    inside = np.abs(grid) <= 1
    far = grid >= 2.5
    rows, fits = [], {}
    for name in ctx.progress(cfg.activations, desc="activations"):
        for s in range(cfg.seeds):
            rng = np.random.default_rng(ctx.seed + s)
            x = np.sort(rng.uniform(-1, 1, cfg.n_train))
            xt = torch.tensor(x)[:, None]
            yt = torch.tensor(f(x))[:, None]
            torch.manual_seed(ctx.seed + s)
            model = mlp([1] + [cfg.width] * cfg.depth + [1], name).double()
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            for _ in range(cfg.steps):
                opt.zero_grad()
                ((model(xt) - yt) ** 2).mean().backward()
                opt.step()
            with torch.no_grad():
                y = model(torch.tensor(grid)[:, None]).numpy()[:, 0]
            slope = np.gradient(y, grid)
            curv = np.abs(np.diff(y, 2)) / (grid[1] - grid[0]) ** 2
            rows.append(
                {
                    "activation": name,
                    "seed": s,
                    "pieces_in_[-1,1]": count_pieces(y[inside], grid[inside]),
                    "curved_share_in_[-1,1]": float(np.mean(curv[inside[1:-1]] > 1e-3)),
                    "mean_|slope|_in_[-1,1]": float(np.abs(slope[inside]).mean()),
                    "mean_|slope|_on_[2.5,3]": float(np.abs(slope[far]).mean()),
                    "train_rmse": float(
                        np.sqrt(np.mean((y[np.searchsorted(grid, x)] - f(x)) ** 2))
                    ),
                }
            )
            if s == 0:
                fits[name] = y
    ctx.table(
        "shapes", rows, note=f"{cfg.depth} hidden layers of {cfg.width}, Adam {cfg.steps} steps"
    )

    fig, ax = new_figure(1, 1, size=(7, 4))
    ax[0, 0].plot(grid, f(grid), color="black", lw=2, label="target (data only in [-1, 1])")
    for name, y in fits.items():
        ax[0, 0].plot(grid, y, label=name)
    ax[0, 0].axvspan(-1, 1, color="gray", alpha=0.1)
    ax[0, 0].set(ylim=(-4, 4), title="fits and extrapolation (seed 0)", xlabel="x")
    ax[0, 0].legend(fontsize=7)
    ctx.figure("extrapolation", fig, "What each activation does inside and outside the data.")

    def col(name: str, key: str) -> np.ndarray:
        return np.array([r[key] for r in rows if r["activation"] == name])

    relu_curved, tanh_curved = (
        col("relu", "curved_share_in_[-1,1]"),
        col("tanh", "curved_share_in_[-1,1]"),
    )
    ctx.claim(
        "ReLU fits are piecewise linear (under 5% of grid points in [-1, 1] are curved) while "
        "tanh fits are smooth (over 95% curved)",
        value=float(relu_curved.mean()),
        holds=relu_curved.max() < 0.05 and tanh_curved.min() > 0.95,
        seeds=cfg.seeds,
        detail=f"curved share: ReLU max {relu_curved.max():.3f}, tanh min {tanh_curved.min():.3f}",
    )
    ratio_tanh = col("tanh", "mean_|slope|_on_[2.5,3]") / col("tanh", "mean_|slope|_in_[-1,1]")
    ratio_relu = col("relu", "mean_|slope|_on_[2.5,3]") / col("relu", "mean_|slope|_in_[-1,1]")
    lo, hi = bootstrap_ci(ratio_tanh)
    ctx.claim(
        "Far from the data (x in [2.5, 3]) tanh nets flatten: their mean |slope| is below 10% "
        "of that inside [-1, 1]",
        value=float(ratio_tanh.mean()),
        holds=hi < 0.1,
        interval=(lo, hi),
        seeds=cfg.seeds,
    )
    lo, hi = bootstrap_ci(ratio_relu)
    ctx.claim(
        "ReLU nets keep extrapolating linearly: their mean |slope| on [2.5, 3] is above 10% of "
        "that inside [-1, 1]",
        value=float(ratio_relu.mean()),
        holds=lo > 0.1,
        interval=(lo, hi),
        seeds=cfg.seeds,
    )
