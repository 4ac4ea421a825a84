"""Lab: do alignment and uniformity (Wang & Isola 2020) track linear-probe accuracy?"""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, fit, lab, make_ensemble, new_figure, per_scale
from mlatlas.core.power import replicate_note
from mlatlas.core.seeding import fixed_generator
from mlatlas.core.stats import spearman
from mlatlas.foundations.optim.schedules import warmup_cosine
from mlatlas.paradigms.selfsupervised.augment import Augment
from mlatlas.paradigms.selfsupervised.metrics import alignment, uniformity
from mlatlas.paradigms.selfsupervised.probe import probe_accuracy
from mlatlas.paradigms.selfsupervised.train import (
    build,
    features,
    load,
    simclr_ensemble_loss,
    view_pairs,
)


@lab("selfsupervised", insights=["representation quality"])
def alignment_uniformity(ctx: Lab) -> None:
    """Alignment and uniformity against linear-probe accuracy, across temperatures and training.

    Wang & Isola (2020) split the contrastive loss into two properties of the normalised
    features: *alignment* (two views of an image map close together) and *uniformity* (the
    features spread over the sphere), and found that encoders low on both transfer best. Here
    SimCLR trains the tiny ViT at several temperatures tau, and at evenly spaced checkpoints
    each run is measured three ways on fixed held-out images: alignment (of two fixed random
    views) and uniformity of the features h the probe reads (not of the projection z the loss
    sees), and the test accuracy of a linear probe.

    Claims, fixed before measuring: per seed, over every (tau, checkpoint) point, lower
    uniformity goes with higher probe accuracy, and so does lower alignment (Spearman's
    rho < 0, one sample per seed; Wang & Isola 2020); and the temperature trades one for the
    other at the end of training: the smallest tau ends more uniform and less aligned than the
    largest (the uniformity-tolerance dilemma of Wang & Liu 2021).

    At the default scale (MNIST, tau 0.1, 0.3, 1.0, 240 steps, 6 seeds, run seed 0) alignment
    behaves as claimed (rho = -0.62, supported), but uniformity does not: rho = +0.35, refuted,
    so the more uniform encoders probed *worse*; and the temperature claim is refuted in both
    parts, tau = 0.1 ending less uniform (-0.53 against -1.01) and better aligned (0.16 against
    0.33) than tau = 1.0, while probing best (0.67 against 0.64). Both properties are measured
    on h, the feature the probe reads, whereas the loss and the two papers' analyses act on the
    normalised projection z; the projection head can absorb what the temperature does to z (Chen
    et al. 2020, section 4.2), which may be why h does not follow.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(None, 10000, None),
        n_probe=per_scale(400, 2000, 10000),
        n_test=per_scale(None, 1000, None),
        n_pairs=per_scale(200, 500, 2000),
        taus=[0.1, 0.3, 1.0],
        seeds=per_scale(2, 6, 10),
        steps=per_scale(16, 240, 5000),
        evals=per_scale(2, 4, 10),
        batch=per_scale(32, 64, 256),
        lr=1e-3,
        vit=per_scale({"d": 32, "layers": 1}, {"d": 48, "layers": 2}, {"d": 128, "layers": 4}),
    )
    rho = {
        m: ctx.claim(
            f"Lower {m} goes with higher linear-probe accuracy across temperatures and checkpoints",
            quantity=f"per seed: Spearman's rho between {m} and probe accuracy over every "
            "(tau, checkpoint) point",
            direction="<",
            margin=0.0,
        )
        for m in ("uniformity", "alignment")
    }
    lo, hi = min(cfg.taus), max(cfg.taus)
    trade = ctx.claim(
        f"The temperature trades alignment for uniformity: tau = {lo:g} ends more uniform and "
        f"less aligned than tau = {hi:g}",
        quantity=f"final checkpoint; part uniformity: a = L_uniform at tau {hi:g}, b = at "
        f"{lo:g}; part alignment: a = L_align at tau {lo:g}, b = at {hi:g}",
        direction=">",
        margin=0.0,
        paired=True,
    )
    data = load(cfg.dataset, cfg.n_train, cfg.n_test)
    ctx.dataset(data.record)
    reps = list(ctx.replicates(cfg.seeds))
    replicate_note(ctx, cfg.seeds, {"its weakest claim": 6})
    S, T = len(reps), len(cfg.taus)
    members = [(tau, s) for tau in cfg.taus for s in range(S)]  # tau-major
    ens = make_ensemble(
        lambda _: build("simclr", cfg.vit),
        len(members),
        lambda m: reps[members[m][1]].seed_torch("init"),
    )
    x_probe, y_probe = data.x_train[: cfg.n_probe], data.y_train[: cfg.n_probe]
    g = fixed_generator("alignment_uniformity", "views")  # the same two views at every checkpoint
    base = data.x_test[: cfg.n_pairs]
    view1, view2 = Augment()(base, g), Augment()(base, g)

    def evaluate(step: int) -> np.ndarray:
        """(3, members): alignment, uniformity, probe accuracy of every member."""
        h1, h2 = features(ens, view1), features(ens, view2)
        acc = probe_accuracy(
            features(ens, x_probe), y_probe, features(ens, data.x_test), data.y_test, data.n_classes
        )
        return np.stack(
            [alignment(h1, h2).cpu().numpy(), uniformity(h1).cpu().numpy(), acc.cpu().numpy()]
        )

    res = fit(
        ens,
        torch.optim.Adam(ens.parameters(), lr=cfg.lr),
        simclr_ensemble_loss([tau for tau, _ in members]),
        view_pairs(
            data.x_train,
            cfg.batch,
            cfg.steps,
            [reps[s] for _, s in members],
            [Augment()] * len(members),
        ),
        cfg.steps,
        ctx=ctx,
        desc="simclr",
        schedule=warmup_cosine(cfg.lr, max(1, cfg.steps // 10), cfg.steps),
        log_every=max(1, cfg.steps // 10),
        evaluate=evaluate,
        eval_every=max(1, cfg.steps // cfg.evals),
        eval_last=True,
    )
    steps = [st for st, _ in res.evals]
    ev = np.stack([v for _, v in res.evals])  # (checkpoints, 3, members)
    ev[:, :, np.asarray(res.diverged, dtype=bool)] = np.nan
    align, unif, acc = (ev[:, k].reshape(len(steps), T, S) for k in range(3))
    rows = []
    for s, rep in enumerate(reps):
        points = np.isfinite(acc[:, :, s])
        for m, metric in (("uniformity", unif), ("alignment", align)):
            r = spearman(metric[:, :, s][points], acc[:, :, s][points]) if points.all() else np.nan
            rho[m].add(rep.id, r)
            rows.append({"seed": rep.id, "metric": m, "spearman_rho_with_probe_acc": r})
        i_lo, i_hi = cfg.taus.index(lo), cfg.taus.index(hi)
        trade.add(rep.id, unif[-1, i_hi, s], unif[-1, i_lo, s], part="uniformity")
        trade.add(rep.id, align[-1, i_lo, s], align[-1, i_hi, s], part="alignment")
    ctx.table(
        "correlations",
        rows,
        note=f"one Spearman rho per seed over {T} temperatures x {len(steps)} checkpoints",
    )
    final = [
        {
            "tau": tau,
            "alignment": float(np.nanmean(align[-1, t])),
            "uniformity": float(np.nanmean(unif[-1, t])),
            "probe_acc": float(np.nanmean(acc[-1, t])),
        }
        for t, tau in enumerate(cfg.taus)
    ]
    ctx.table("final", final, note=f"means over {S} seeds at step {steps[-1]}")
    for row in final:
        ctx.log(step=steps[-1], **row)
    fig, ax = new_figure(1, 2, size=(10, 3.8))
    for t, tau in enumerate(cfg.taus):
        ax[0, 0].plot(align[:, t].mean(1), unif[:, t].mean(1), marker="o", label=f"tau {tau:g}")
        ax[0, 1].scatter(unif[:, t].ravel(), acc[:, t].ravel(), s=12, label=f"tau {tau:g}")
    ax[0, 0].set(
        xlabel="alignment (lower: views agree)",
        ylabel="uniformity (lower: spread)",
        title="trajectories over checkpoints (seed means)",
    )
    ax[0, 1].set(xlabel="uniformity", ylabel="probe accuracy", title="every seed and checkpoint")
    ax[0, 0].legend()
    ctx.figure("alignment_uniformity", fig, "Wang & Isola's two properties against the probe.")
