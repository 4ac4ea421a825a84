"""Lab: one hidden layer of growing width fits a 1-D function ever more closely."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, Replicate, lab, new_figure, per_scale, spearman
from mlatlas.core.data import FUNCTIONS_1D, record
from mlatlas.core.train import make_mlp, rmse
from mlatlas.foundations.backprop.stacked import StackedMLP, train_regression

INITS = ("spread", "default")


def one_hidden_layer(rep: Replicate, width: int, init: str, slope: float) -> torch.nn.Sequential:
    """f(x) = W2 tanh(W1 x + b1) + b2 (float64), seeded per replicate and width, so the two
    inits of one replicate share W2, b2 and differ only in the first layer.

    default: nn.Linear's init, W1, b1 ~ U(-1, 1) on a 1-D input (every unit almost linear).
    spread: slopes W1 ~ N(0, slope^2) and centres c ~ U(-1, 1) on the domain, b1 = -W1 c, so
    the units' bends are spread over [-1, 1] at the sharpness of the target's features.
    """
    rep.seed_torch("init", width)
    net = make_mlp([1, width, 1], "tanh").double()
    if init == "spread":
        g = rep.generator("spread", width)
        w1 = torch.randn(width, 1, generator=g, dtype=torch.float64) * slope
        centres = 2 * torch.rand(width, generator=g, dtype=torch.float64) - 1
        with torch.no_grad():
            net[0].weight.copy_(w1)
            net[0].bias.copy_(-w1[:, 0] * centres)
    return net


def log_log_slope(widths: list[int], errors: list[float]) -> float:
    """The least-squares slope of log10 error on log10 width: -a for error ~ width^-a."""
    return float(np.polyfit(np.log10(widths), np.log10(errors), 1)[0])


@lab("backprop", insights=["Compositional function learning"])
def universal_approximation(ctx: Lab) -> None:
    """One hidden layer of growing width fits a 1-D function ever more closely.

    Cybenko (1989) and Hornik (1991) proved that one hidden layer of enough sigmoidal units
    approximates any continuous function on a compact set. The theorem says nothing about
    how many units, nor whether training finds them; this lab measures test RMSE against
    width after a fixed Adam budget (full batch, cosine decay), for two first-layer inits:
    nn.Linear's default (slopes U(-1, 1): on a 1-D input every unit starts almost linear) and
    units spread over the domain with slopes N(0, s^2), s = `init_slope`, matched to the
    target's finest feature (sin(7 pi x) has period 2/7). The claims use the spread init.

    Each seed draws its own training sample and initial weights; all seeds of one (init,
    width) train together as one stacked model. Both claims are tested over seeds: the
    per-seed slope of log RMSE on log width against -1/2, and the per-seed ratio
    RMSE(width 1) / RMSE(widest) against 10 (the old verdicts used the seed-mean curve and
    ignored the ratio's interval).

    Changed from the earlier version: the trend claim tested the per-seed Spearman rho of
    width vs RMSE against -0.9; rho was -1 in every seed, and five samples at a bound have
    zero spread, which the sign test cannot decide (smallest p 1/32). It now tests a
    continuous quantity, the fitted log-log slope, against Barron's (1993) rate: n units of
    a one-hidden-layer sigmoidal net can approximate a function with a finite first Fourier
    moment to RMSE O(n^(-1/2)), so a slope below -0.5 says training keeps up with that
    guarantee. Seeds went from 5 to 8 (each is one more member of the stacked models); rho
    stays in the table.
    """
    cfg = ctx.config(
        function="wiggle",
        widths=per_scale(
            [1, 4, 16], [1, 2, 4, 8, 16, 32, 64, 128], [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        ),
        seeds=per_scale(2, 8, 10),
        steps=per_scale(300, 3000, 20000),
        lr=0.01,
        init_slope=10.0,
        n_train=256,
    )
    f = FUNCTIONS_1D[cfg.function]
    ctx.dataset(record(f"function_1d:{cfg.function}", n_train=cfg.n_train, domain=[-1, 1]))
    x_test = np.linspace(-1, 1, 1001)
    y_test = f(x_test)
    target_std = float(np.std(y_test))

    trend = ctx.claim(
        "Test error falls as the hidden layer widens, at least as fast as Barron's (1993) "
        "width^(-1/2) rate (slope of log RMSE on log width < -0.5)",
        quantity=f"per-seed least-squares slope of log10 test RMSE on log10 width over "
        f"{cfg.widths}, spread init",
        direction="<",
        margin=-0.5,
    )
    narrow, wide = cfg.widths[0], cfg.widths[-1]
    ratio = ctx.claim(
        f"The widest net (width {wide}) has at least 10x lower test RMSE than width {narrow}",
        quantity=f"per-seed test RMSE; a = width {narrow}, b = width {wide}, spread init",
        direction=">",
        margin=10.0,
        paired=True,
        log=True,
    )

    reps, xs, models = [], [], {(i, w): [] for i in INITS for w in cfg.widths}
    for rep in ctx.replicates(cfg.seeds, desc="init"):
        reps.append(rep)
        xs.append(np.sort(rep.rng("data").uniform(-1, 1, cfg.n_train)))
        for init in INITS:
            for w in cfg.widths:
                models[init, w].append(one_hidden_layer(rep, w, init, cfg.init_slope))
    xt = torch.tensor(np.stack(xs))[:, :, None]  # (seeds, n_train, 1)
    yt = torch.tensor(f(np.stack(xs)))[:, :, None]
    xs_test = torch.tensor(x_test)[:, None]

    errs: dict[tuple[str, int], np.ndarray] = {}
    curves = {}
    for init, w in ctx.progress(list(models), desc="widths"):
        net = StackedMLP(models[init, w])
        fr = train_regression(net, xt, yt, cfg.steps, cfg.lr, floor=cfg.lr / 100)
        with torch.no_grad():
            pred = net(xs_test)[:, :, 0].cpu().numpy()  # (seeds, points)
        errs[init, w] = np.array([rmse(p, y_test) for p in pred])
        errs[init, w][fr.diverged] = np.nan
        if init == "spread":
            curves[w] = pred[0]
        ctx.log(step=w, init=init, test_rmse=float(np.nanmean(errs[init, w])))

    slopes, rhos = [], []
    for i, rep in enumerate(reps):
        per_width = [errs["spread", w][i] for w in cfg.widths]
        ok = np.all(np.isfinite(per_width))  # a diverged width makes the seed a failure
        slopes.append(log_log_slope(cfg.widths, per_width) if ok else np.nan)
        rhos.append(spearman(cfg.widths, per_width) if ok else np.nan)
        trend.add(rep.id, slopes[-1])
        ratio.add(rep.id, errs["spread", narrow][i], errs["spread", wide][i])
    ctx.table(
        "trend_by_seed",
        [
            {"seed": r.id, "log_log_slope": slopes[r.id], "spearman_rho": rho}
            for r, rho in zip(reps, rhos, strict=True)
        ],
        note="spread init; slope of log10 RMSE on log10 width (Barron 1993: -0.5 or steeper)",
    )

    rows = [
        {
            "init": init,
            "width": w,
            "params": 3 * w + 1,
            "test_rmse_mean": float(np.nanmean(errs[init, w])),
            "test_rmse_min": float(np.nanmin(errs[init, w])),
            "test_rmse_max": float(np.nanmax(errs[init, w])),
            "rmse/target_std": float(np.nanmean(errs[init, w]) / target_std),
        }
        for init, w in models
    ]
    ctx.table(
        "rmse_by_width",
        rows,
        note=f"{cfg.seeds} seeds (mean, min, max); spread: slopes N(0, {cfg.init_slope}^2), "
        "centres U(-1, 1); default: nn.Linear's U(-1, 1)",
    )

    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    ax[0, 0].plot(x_test, y_test, color="black", lw=2.5, label="target")
    for w in cfg.widths[:: max(1, len(cfg.widths) // 4)]:
        ax[0, 0].plot(x_test, curves[w], lw=1.2, label=f"width {w}")
    ax[0, 0].scatter(xs[0], f(xs[0]), s=4, color="gray", alpha=0.5)
    ax[0, 0].set(title="fits (spread init, seed 0)", xlabel="x", ylabel="f(x)")
    ax[0, 0].legend(fontsize=7)
    for init in INITS:
        e = np.stack([errs[init, w] for w in cfg.widths])  # (widths, seeds)
        ax[0, 1].loglog(cfg.widths, np.nanmean(e, 1), "o-", label=f"{init} init")
        ax[0, 1].fill_between(cfg.widths, np.nanmin(e, 1), np.nanmax(e, 1), alpha=0.25)
    ax[0, 1].set(title="test RMSE vs hidden width", xlabel="hidden units", ylabel="RMSE")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("fits_and_error", fig, "Tanh fits, and test RMSE by width (band: seeds).")

    default_ratio = float(np.nanmean(errs["default", narrow]) / np.nanmean(errs["default", wide]))
    ctx.metric("rmse_ratio_narrowest_to_widest_default_init", default_ratio)
    ctx.note(
        f"With nn.Linear's default init the same budget gives a mean-RMSE ratio of "
        f"{default_ratio:.3g} (widest RMSE {np.nanmean(errs['default', wide]):.3g}): existence "
        "of an approximation is not the same as finding it in a fixed number of steps."
    )
    ctx.note("Trained with PyTorch (float64, Adam with cosine decay), all seeds stacked.")
