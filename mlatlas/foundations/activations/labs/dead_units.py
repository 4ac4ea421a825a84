"""Lab: ReLU units that never activate after high-learning-rate training, and the fix."""

from __future__ import annotations

import math

import numpy as np
import torch

from mlatlas.core import Lab, fit, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.data import image_classification
from mlatlas.core.ensemble import (
    ensemble_cross_entropy,
    make_ensemble,
    member_accuracy,
    member_batches,
)
from mlatlas.core.train import batches_for_steps
from mlatlas.foundations.activations.functions import mlp
from mlatlas.foundations.activations.train import hidden_preactivations

NAMES = ("relu", "leaky_relu", "gelu")


def never_active_share(model: torch.nn.Sequential, x: torch.Tensor) -> tuple[float, float]:
    """(share of never-active units over all hidden layers, share in layer 1): a unit is
    never active if z <= 0 on every probe input. NaN for a diverged net: a NaN is never
    <= 0, so it must not count as alive either."""
    with torch.no_grad():
        zs = hidden_preactivations(model, x)
    if any(not torch.isfinite(z).all() for z in zs):
        return math.nan, math.nan
    per_layer = [(z <= 0).all(dim=0).float().mean().item() for z in zs]
    return float(np.mean(per_layer)), per_layer[0]


@lab("activations", insights=["gradient preservation"])
def dead_units(ctx: Lab) -> None:
    """ReLU units that never activate after high-learning-rate training, and the fix.

    A ReLU unit whose pre-activation is negative for every input has phi' = 0 everywhere:
    no gradient reaches its weights, so it cannot recover. Large updates can push units
    there. Leaky ReLU (slope 0.01 below zero) and GELU keep a gradient for negative inputs.
    The lab trains each activation at a low and a high learning rate (plain SGD); within a
    seed every arm starts from the same weights and sees the same minibatches, and the seeds
    of one arm train as one batched ensemble. It counts the hidden units with z <= 0 on all
    held-out probe images.

    Changed from the earlier version: pairs were matched by position after dropping diverged
    runs, and the Leaky-ReLU/GELU claim compared two means without an interval. Both claims
    now pair by seed id, the second with one part per activation. A diverged run has no
    dead-unit share (its pre-activations are NaN); it is counted as a failure of its seed
    (shown in the claim and the table) rather than imputed, because imputing 1 (all dead) or
    0 (none dead) would decide the claim by fiat.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(None, 20000, None),
        depth=3,
        width=256,
        steps=per_scale(150, 1000, 5000),
        batch=64,
        low_lr=0.01,
        high_lr=0.5,  # the edge of stability: at lr 1, 2 and 4 this net diverges on MNIST
        seeds=per_scale(2, 5, 10),
        n_probe=2000,
    )
    data = image_classification(cfg.dataset, fixed_rng("data"), n_train=cfg.n_train)
    ctx.dataset(data.record)
    sizes = [data.x_train.shape[1]] + [cfg.width] * cfg.depth + [data.n_classes]
    x_probe = data.x_test[: cfg.n_probe]

    c_lr = ctx.claim(
        f"High-LR training (lr {cfg.high_lr}) leaves more dead ReLU units than low-LR training "
        f"(lr {cfg.low_lr})",
        quantity="share of never-active hidden units; a = high LR, b = low LR, same init and "
        "minibatches",
        direction=">",
        margin=0.0,
        paired=True,
    )
    c_fix = ctx.claim(
        "After the same high-LR training, Leaky ReLU and GELU have fewer never-active units "
        "than ReLU",
        quantity=f"share of never-active hidden units after lr {cfg.high_lr}; a = Leaky ReLU or "
        "GELU (one part each), b = ReLU, same init and minibatches",
        direction="<",
        margin=0.0,
        paired=True,
    )

    reps = list(ctx.replicates(cfg.seeds))
    loss_fn = ensemble_cross_entropy(data.x_train, data.y_train)
    rows, shares = [], {}
    for name in NAMES:
        for lr in (cfg.low_lr, cfg.high_lr):
            ens = make_ensemble(
                lambda r, name=name: mlp(sizes, name),
                len(reps),
                lambda r: reps[r].seed_torch("init"),
            )
            at_init = [never_active_share(ens.member(r), x_probe)[0] for r in range(len(reps))]
            opt = torch.optim.SGD(ens.parameters(), lr=lr)
            batches = member_batches(
                [
                    batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, r.rng("batches"))
                    for r in reps
                ]
            )
            res = fit(ens, opt, loss_fn, batches, cfg.steps, ctx=ctx, desc=f"{name} lr {lr}")
            acc = member_accuracy(ens, data.x_test, data.y_test)
            after = []
            for rep in reps:
                share, first = never_active_share(ens.member(rep.id), x_probe)
                after.append(share)
                rows.append(
                    {
                        "activation": name,
                        "lr": lr,
                        "seed": rep.id,
                        "never_active_at_init": at_init[rep.id],
                        "never_active_after": share,
                        "never_active_layer1": first,
                        "diverged": bool(res.diverged[rep.id]) or not math.isfinite(share),
                        "test_acc": acc[rep.id],
                    }
                )
            shares[(name, lr)] = np.array(after)
            ctx.log(step=cfg.steps, activation=name, lr=lr, never_active=float(np.nanmean(after)))

    for rep in reps:
        i = rep.id
        c_lr.add(i, shares[("relu", cfg.high_lr)][i], shares[("relu", cfg.low_lr)][i])
        for name in ("leaky_relu", "gelu"):
            c_fix.add(
                i, shares[(name, cfg.high_lr)][i], shares[("relu", cfg.high_lr)][i], part=name
            )
    ctx.table(
        "never_active_units",
        rows,
        note=f"share of hidden units with z <= 0 on all {len(x_probe)} held-out inputs after "
        f"{cfg.steps} SGD steps; a diverged run (NaN) is a failure of its seed in the claims",
    )
    fig, ax = new_figure(1, 1, size=(6, 3.6))
    for j, lr in enumerate((cfg.low_lr, cfg.high_lr)):
        for k, name in enumerate(NAMES):
            s = shares[(name, lr)]
            ok = s[np.isfinite(s)]
            kw = {"label": f"lr {lr}"} if k == 0 else {}
            ax[0, 0].bar(
                k + 0.38 * j, ok.mean() if ok.size else 0.0, width=0.36, color=f"C{j}", **kw
            )
            ax[0, 0].plot(np.full(ok.size, k + 0.38 * j), ok, "k.", ms=3)
    ax[0, 0].set_xticks(np.arange(3) + 0.19, NAMES)
    ax[0, 0].set(ylabel="share of never-active units", title=f"after {cfg.steps} SGD steps")
    ax[0, 0].legend()
    ctx.figure(
        "dead_units",
        fig,
        "Never-active hidden units after low- and high-LR training (bar: mean; dots: seeds).",
    )
