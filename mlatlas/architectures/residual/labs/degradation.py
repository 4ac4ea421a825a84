"""Lab: the degradation problem, plain vs residual nets of 8 to 32 layers."""

from __future__ import annotations

import numpy as np

from mlatlas.architectures.residual.blocks import CifarResNet
from mlatlas.architectures.residual.train import group_accuracy, small_images, train_group
from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.seeding import fixed_rng

KINDS = ("plain", "residual")


@lab("residual", insights=["network depth vs width", "Identity mappings"])
def degradation(ctx: Lab) -> None:
    """Deeper plain nets get higher *training* error; residual nets of the same depth do not.

    He et al. (2016, Fig. 1) saw a 56-layer plain net train worse than a 20-layer one: not
    overfitting but an optimisation failure. The same nets with identity shortcuts train
    better as they get deeper. Here: plain and residual CIFAR-style nets of 6n + 2 layers,
    same optimizer, budget and batch order; a plain and a residual net of one depth start
    from the same weights (the shortcut is the only difference). Training error is measured
    on a fixed probe of training images, per seed; the claims pair depths (or kinds) by seed.

    The no-worse margin is +0.5 points because it must stay below the gap the paper calls
    degradation: He et al. (2016, Table 2) give top-1 ImageNet validation error 27.94% for
    plain-18 and 28.54% for plain-34 (+0.60 points), against 27.88% and 25.03% for ResNet-18
    and ResNet-34 (-2.85). A +2-point margin would call a residual net "no worse" while it
    degraded more than three times as much as the paper's plain net. The paper states no
    margin, and its setting is not ours (ImageNet, 18 vs 34 layers, 600k iterations to
    convergence, validation error; here small greyscale images, 6n + 2 layers, a few hundred
    SGD steps, training error on a fixed probe where one image is 1/probe): its +0.60 is the
    yardstick the margin stays under, not a number this lab should reproduce.

    A diverged run has no training error: it is counted as failed (with its seed id) and
    the claims it enters are inconclusive. A fixed failure value such as chance-level error
    would favour whichever claim the diverged arm stands against (a diverged deep plain net
    would count as the degradation under test).

    Changed in the port: the old "no higher training error" claim was tested as "the interval
    of the difference lies below +0.5 points"; the sentence now states that margin, decided
    by the interval of the paired difference.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "fashion-mnist", "fashion-mnist"),
        n_train=per_scale(None, 20000, None),
        n_test=per_scale(None, 2000, None),
        probe=per_scale(1000, 2000, 4000),
        size=per_scale(8, 14, 28),
        ns=per_scale([1, 3], [1, 5], [3, 5, 9]),
        widths=[8, 16, 32],
        steps=per_scale(100, 500, 5000),
        batch=per_scale(64, 64, 128),
        lr=0.05,
        seeds=per_scale(3, 5, 10),
    )
    data = small_images(cfg)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    keep = fixed_rng("residual", "probe").permutation(len(data.x_train))[: cfg.probe]
    probe = data.x_train[keep], data.y_train[keep]
    lo_n, hi_n = cfg.ns[0], cfg.ns[-1]
    lo_d, hi_d = 6 * lo_n + 2, 6 * hi_n + 2
    what = f"training error on {len(keep)} fixed training images after {cfg.steps} SGD steps"
    deeper_plain = ctx.claim(
        f"The {hi_d}-layer plain net has higher training error than the {lo_d}-layer plain net",
        quantity=f"{what}; a = {hi_d}-layer plain, b = {lo_d}-layer plain",
        direction=">",
        margin=0.0,
        paired=True,
        insight="network depth vs width",
    )
    deeper_res = ctx.claim(
        f"The {hi_d}-layer residual net's training error is no higher than the {lo_d}-layer "
        "residual net's (difference below +0.5 points)",
        quantity=f"{what}; a = {hi_d}-layer residual, b = {lo_d}-layer residual",
        direction="<",
        margin=0.005,
        paired=True,
        insight="Identity mappings",
    )
    res_vs_plain = ctx.claim(
        f"At {hi_d} layers the residual net trains to lower error than the plain net",
        quantity=f"{what}; a = plain, b = residual, both {hi_d} layers",
        direction=">",
        margin=0.0,
        paired=True,
        insight="Identity mappings",
    )
    reps = list(ctx.replicates(cfg.seeds))
    err: dict[tuple[str, int], np.ndarray] = {}
    test_err: dict[tuple[str, int], np.ndarray] = {}
    failed: dict[tuple[str, int], int] = {}
    for n in cfg.ns:
        for kind in KINDS:
            group, diverged = train_group(
                lambda n=n, kind=kind: CifarResNet(
                    n, tuple(cfg.widths), data.n_classes, residual=kind == "residual"
                ),
                reps,
                data,
                cfg,
                key=("depth", n),  # same key for both kinds: same initial weights
                ctx=ctx,
                desc=f"{kind} {6 * n + 2} layers",
            )
            err[(kind, n)] = 1 - group_accuracy(group, *probe, diverged)
            test_err[(kind, n)] = 1 - group_accuracy(group, data.x_test, data.y_test, diverged)
            failed[(kind, n)] = int(diverged.sum())
            ctx.log(step=6 * n + 2, kind=kind, train_error=float(np.nanmean(err[(kind, n)])))
    for i, rep in enumerate(reps):
        deeper_plain.add(rep.id, err[("plain", hi_n)][i], err[("plain", lo_n)][i])
        deeper_res.add(rep.id, err[("residual", hi_n)][i], err[("residual", lo_n)][i])
        res_vs_plain.add(rep.id, err[("plain", hi_n)][i], err[("residual", hi_n)][i])
    ctx.table(
        "errors",
        [
            {
                "layers": 6 * n + 2,
                "kind": kind,
                "train_error": float(np.nanmean(err[(kind, n)])),
                "train_error_sd": float(np.nanstd(err[(kind, n)], ddof=1)),
                "test_error": float(np.nanmean(test_err[(kind, n)])),
                "diverged": failed[(kind, n)],
            }
            for n in cfg.ns
            for kind in KINDS
        ],
        note=f"{cfg.steps} SGD steps, {cfg.seeds} seeds (mean, sd over seeds); train error on "
        f"{len(keep)} training images, test error on {len(data.x_test)} test images",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    depths = [6 * n + 2 for n in cfg.ns]
    for j, kind in enumerate(KINDS):
        means = [np.nanmean(err[(kind, n)]) for n in cfg.ns]
        ax[0, 0].plot(depths, means, "o-", color=f"C{j}", label=kind)
        for d, n in zip(depths, cfg.ns, strict=True):
            ax[0, 0].plot([d] * cfg.seeds, err[(kind, n)], ".", color=f"C{j}", alpha=0.4)
    ax[0, 0].set(xlabel="layers", ylabel="training error", title="degradation")
    ax[0, 0].legend()
    ctx.figure("degradation", fig, "Training error against depth, plain vs residual (dots: seeds).")
