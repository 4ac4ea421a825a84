"""Schedules: the LR range test, then constant vs warmup + cosine vs one-cycle."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from mlatlas.core import Ensemble, Lab, fit, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.data import image_classification
from mlatlas.core.ensemble import ensemble_cross_entropy, member_accuracy, member_batches
from mlatlas.core.train import batches_for_steps, make_mlp
from mlatlas.foundations.optim.optimizers import SGD
from mlatlas.foundations.optim.schedules import constant, one_cycle, warmup_cosine

PLANS: dict[str, Callable[[float, int], Callable[[int], float]]] = {
    "constant": lambda peak, steps: constant(peak),
    "warmup_cosine": lambda peak, steps: warmup_cosine(peak, steps // 10, steps, 0.1),
    "one_cycle": lambda peak, steps: one_cycle(peak, steps),
}


@torch.no_grad()
def scale_member_lrs(ens: Ensemble, factors: Sequence[float]) -> None:
    """Multiply member r's gradients by factors[r]. Momentum SGD without weight decay is linear
    in the gradient, so this is exactly member r running with lr factors[r] x the shared lr
    (whatever the shared schedule): one ensemble then tries several lrs at once."""
    c = torch.tensor(factors)
    for p in ens.parameters():
        p.register_hook(lambda g: g * c.to(g.dtype).view(-1, *([1] * (g.dim() - 1))))


def range_test(ens: Ensemble, loss_fn: Callable, batches, lrs: np.ndarray, momentum: float):
    """Smith's LR range test on every member at once: lr rises geometrically; per member the
    smoothed loss, and the lr at which it first exceeds 2x its running minimum after that
    minimum fell below its start (inf if never). Stops when every member has blown up."""
    R = ens.size
    opt = SGD(ens.parameters(), lr=float(lrs[0]), momentum=momentum)
    smooth, hist = np.full(R, math.nan), []
    run_min, blow = np.full(R, math.inf), np.full(R, math.inf)

    def on_step(step: int, loss: np.ndarray) -> bool:
        nonlocal smooth
        smooth = loss.copy() if step == 1 else 0.9 * smooth + 0.1 * loss
        hist.append(smooth.copy())
        bad = ~np.isfinite(smooth) | (smooth > 2 * run_min)
        fresh = bad & (run_min < hist[0]) & np.isinf(blow)
        blow[fresh] = lrs[step - 1]
        run_min[:] = np.fmin(run_min, smooth)
        return bool(np.isfinite(blow).all())

    fit(ens, opt, loss_fn, batches, len(lrs), schedule=lambda t: float(lrs[t]), on_step=on_step)
    return np.array(hist), blow


@lab("optim", insights=["learning rate scheduling"])
def schedules(ctx: Lab) -> None:
    """LR range test, then constant vs warmup+cosine vs one-cycle at equal budget.

    The range test (Smith 2017) raises the lr exponentially during a short run: the loss
    falls, flattens, then blows up; a good peak lr sits somewhat below the blow-up (here a
    decade below the smoothed-loss minimum, geometric mean over seeds). The range test is run
    per seed, so its claim is an experiment: the lr at which the smoothed loss first doubles
    its minimum, censored at the largest lr. Each schedule then gets its peak lr from the
    grid {1/3, 1, 3, 10} x that suggestion by validation accuracy (a split carved from the
    training images; one selection run, every grid lr at once), and trains the same MLP with
    momentum SGD for the same number of steps on every seed (same init and batch order per
    seed across schedules); test accuracies are compared paired by seed. (Before, every
    schedule used the range test's lr untuned, with 3 seeds.) A diverged run counts as chance.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(None, 25000, None),
        val_frac=0.2,
        hidden=[256, 256],
        batch=128,
        range_steps=per_scale(100, 300, 500),
        range_lrs=[1e-4, 10.0],
        grid=[1 / 3, 1.0, 3.0, 10.0],
        steps=per_scale(150, 1500, 6000),
        seeds=per_scale(2, 5, 10),
        momentum=0.9,
    )
    data = image_classification(cfg.dataset, fixed_rng("schedules data"), n_train=cfg.n_train)
    order = fixed_rng("schedules validation split").permutation(len(data.x_train))
    cut = int(len(order) * (1 - cfg.val_frac))
    x_tr, y_tr = data.x_train[order[:cut]], data.y_train[order[:cut]]
    x_val, y_val = data.x_train[order[cut:]], data.y_train[order[cut:]]
    ctx.dataset({**data.record, "n_train": len(x_tr), "n_val": len(x_val)})
    sizes = [x_tr.shape[1], *cfg.hidden, data.n_classes]
    loss_fn, n = ensemble_cross_entropy(x_tr, y_tr), len(x_tr)
    reps = list(ctx.replicates(cfg.seeds))

    def build(key: str, members: Sequence) -> Ensemble:
        models = []
        for m in members:
            if m is None:
                ctx.seed_torch(key)
            else:
                m.seed_torch(key)
            models.append(make_mlp(sizes))
        return Ensemble(models)

    # 1. LR range test, one per seed
    lo, hi = cfg.range_lrs
    lrs = lo * (hi / lo) ** (np.arange(cfg.range_steps) / (cfg.range_steps - 1))
    blow_c = ctx.claim(
        f"The LR range test finds a blow-up: the smoothed loss falls, then rises past 2x its "
        f"minimum before the lr reaches {hi:g}",
        quantity="lr at which the smoothed training loss first exceeds 2x its running minimum "
        f"(inf if never; censored at {hi:g})",
        direction="<",
        margin=hi,
        censor_at=hi,
        log=True,
    )
    streams = [batches_for_steps(n, cfg.batch, cfg.range_steps, r.rng("range")) for r in reps]
    hist, blow = range_test(
        build("range init", reps), loss_fn, member_batches(streams), lrs, cfg.momentum
    )
    at_min = []
    for i, r in enumerate(reps):
        blow_c.add(r.id, blow[i])
        upto = hist[:, i] if np.isinf(blow[i]) else hist[: int(np.argmax(lrs >= blow[i])), i]
        at_min.append(float(lrs[int(np.nanargmin(upto))]))
    suggested = float(np.exp(np.mean(np.log(at_min)))) / 10
    ctx.metric("suggested_peak_lr", suggested)
    ctx.table(
        "range_test",
        [{"seed": r.id, "lr_at_min": at_min[i], "blow_up_lr": blow[i]} for i, r in enumerate(reps)],
        note=f"suggested peak lr {suggested:.3g} = geometric mean of lr_at_min / 10",
    )

    # 2. peak lr per schedule, chosen on the validation split
    lr_grid = [suggested * g for g in cfg.grid]
    sel_idx = list(batches_for_steps(n, cfg.batch, cfg.steps, ctx.rng))
    peaks, sel_rows = {}, []
    for name, plan in ctx.progress(list(PLANS.items()), desc="lr selection"):
        ens = build("selection init", [None] * len(lr_grid))  # same init for every grid lr
        scale_member_lrs(ens, cfg.grid)
        opt = SGD(ens.parameters(), lr=suggested, momentum=cfg.momentum)
        res = fit(
            ens,
            opt,
            loss_fn,
            (i.expand(len(lr_grid), -1) for i in sel_idx),
            cfg.steps,
            schedule=plan(suggested, cfg.steps),
        )
        acc = np.where(res.diverged, -1.0, member_accuracy(ens, x_val, y_val))
        peaks[name] = lr_grid[int(np.argmax(acc))]
        sel_rows += [
            {"schedule": name, "peak_lr": lr, "val_acc": float(a)}
            for lr, a in zip(lr_grid, acc, strict=True)
        ]
    ctx.table("lr_selection", sel_rows, note="validation accuracy; -1 marks a diverged run")

    # 3. equal budget, paired by seed (same init and batches per seed), test accuracy
    claims = {
        name: ctx.claim(
            f"At equal budget {label} beats a constant lr in test accuracy (each with its peak "
            "lr chosen on the validation split)",
            quantity=f"test accuracy after {cfg.steps} steps; a = {label}, b = constant",
            direction=">",
            margin=0.0,
            paired=True,
            on_failure=1 / data.n_classes,
        )
        for name, label in (("warmup_cosine", "warmup + cosine"), ("one_cycle", "one-cycle"))
    }
    accs = {}
    for name, plan in ctx.progress(list(PLANS.items()), desc="schedules"):
        ens = build("init", reps)
        opt = SGD(ens.parameters(), lr=peaks[name], momentum=cfg.momentum)
        streams = [batches_for_steps(n, cfg.batch, cfg.steps, r.rng("batches")) for r in reps]
        res = fit(
            ens,
            opt,
            loss_fn,
            member_batches(streams),
            cfg.steps,
            ctx=ctx,
            desc=name,
            schedule=plan(peaks[name], cfg.steps),
            log_every=max(1, cfg.steps // 10),
        )
        acc = member_accuracy(ens, data.x_test, data.y_test)
        accs[name] = np.where(res.diverged, math.nan, acc)
    for i, r in enumerate(reps):
        for name, c in claims.items():
            c.add(r.id, accs[name][i], accs["constant"][i])
    rows = [
        {
            "schedule": k,
            "peak_lr": peaks[k],
            "test_acc_mean": float(np.nanmean(a)),
            "test_acc_min": float(np.nanmin(a)),
            "test_acc_max": float(np.nanmax(a)),
            "diverged": int(np.isnan(a).sum()),
        }
        for k, a in accs.items()
    ]
    ctx.table(
        "schedules",
        rows,
        note=f"{cfg.steps} steps, {cfg.seeds} seeds, momentum "
        f"{cfg.momentum}; test set of {len(data.x_test)} images",
    )

    fig, ax = new_figure(1, 3, size=(15, 3.8))
    for i in range(len(reps)):
        ax[0, 0].semilogx(lrs[: len(hist)], hist[:, i], lw=1)
    ax[0, 0].axvline(suggested, color="gray", ls="--", label=f"suggested {suggested:.2g}")
    ax[0, 0].set(
        title="LR range test (one line per seed)",
        xlabel="lr",
        ylabel="smoothed loss",
        ylim=(0, 2 * float(np.nanmax(hist[0]))),
    )
    ax[0, 0].legend()
    for name, plan in PLANS.items():
        f = plan(peaks[name], cfg.steps)
        ax[0, 1].plot([f(t) for t in range(cfg.steps)], label=f"{name} (peak {peaks[name]:.2g})")
    ax[0, 1].set(title="schedules (chosen peaks)", xlabel="step", ylabel="lr")
    ax[0, 1].legend(fontsize=7)
    for i in range(len(reps)):
        ax[0, 2].plot(range(len(PLANS)), [accs[k][i] for k in PLANS], "o-", color="gray", lw=0.8)
    ax[0, 2].set_xticks(range(len(PLANS)), list(PLANS))
    ax[0, 2].set(title="test accuracy, one line per seed", ylabel="accuracy")
    ctx.figure("schedules", fig, "The LR range test and the three schedules compared.")
