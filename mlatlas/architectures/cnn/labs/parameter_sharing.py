"""Parameter sharing: at equal parameter count a CNN beats an MLP on Fashion-MNIST."""

from __future__ import annotations

import numpy as np

from mlatlas.architectures.cnn.data import images
from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.cnn.train import (
    correct,
    equal_params_mlp,
    train_classifier,
    train_ensemble,
)
from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.train import count_params


@lab("cnn", insights=["Translation invariance"])
def parameter_sharing(ctx: Lab) -> None:
    """At equal parameter count a CNN beats an MLP on Fashion-MNIST: sharing weights across
    positions spends parameters on features instead of on positions.

    LeNet-5 and a one-hidden-layer MLP sized to the same number of parameters are trained
    with the same recipe (Adam, same steps and learning rate) on the same batch stream within
    each seed; the claim is on the per-seed difference of test accuracies. A run whose loss
    diverges scores chance accuracy (1 / classes), so a failure is never dropped.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "fashion-mnist", "fashion-mnist"),
        steps=per_scale(150, 1500, 8000),
        batch=128,
        lr=1e-3,
        seeds=per_scale(2, 5, 10),
        ours=False,
    )
    data = images(cfg.dataset, fixed_rng("cnn", "images"))
    ctx.dataset(data.record)
    chance = 1.0 / data.n_classes
    claim = ctx.claim(
        "With the same number of parameters, the CNN's test accuracy is higher than the MLP's",
        quantity="test accuracy after the same training; a = LeNet-5, b = equal-size MLP",
        direction=">",
        margin=0.0,
        paired=True,
        on_failure=chance,
    )
    cnn_params = count_params(LeNet5(data.n_classes))
    reps = list(ctx.replicates(cfg.seeds))
    mlps = []
    for rep in reps:
        rep.seed_torch("init")
        mlps.append(equal_params_mlp(cnn_params, data.n_classes))
    params = {"cnn": cnn_params, "mlp": count_params(mlps[0])}
    ens, fit_mlp = train_ensemble(
        mlps,
        data.x_train,
        data.y_train,
        cfg.steps,
        cfg.batch,
        [rep.rng("batches") for rep in reps],
        cfg.lr,
        ctx=ctx,
        desc="MLPs",
    )
    accs: dict[str, list[float]] = {"cnn": [], "mlp": []}
    curves = {"cnn": [], "mlp": fit_mlp.losses.T}
    for i, rep in enumerate(reps):
        rep.seed_torch("init")
        cnn = LeNet5(data.n_classes, ours=cfg.ours)
        fit_cnn = train_classifier(
            cnn,
            data.x_train,
            data.y_train,
            cfg.steps,
            cfg.batch,
            rep.rng("batches"),
            cfg.lr,
            ctx=ctx,
            desc=f"CNN seed {rep.id}",
        )
        curves["cnn"].append(fit_cnn.losses)
        a = (
            np.nan
            if fit_cnn.diverged.any()
            else float(correct(cnn, data.x_test, data.y_test).mean())
        )
        b = (
            np.nan
            if fit_mlp.diverged[i]
            else float(correct(ens.member(i), data.x_test, data.y_test).mean())
        )
        accs["cnn"].append(a)
        accs["mlp"].append(b)
        claim.add(rep.id, a, b)
        ctx.log(step=rep.id, cnn=a, mlp=b)

    ctx.table(
        "equal_parameters",
        [
            {
                "model": k,
                "params": params[k],
                "test_acc_mean": float(np.nanmean(v)),
                "test_acc_min": float(np.nanmin(v)),
                "test_acc_max": float(np.nanmax(v)),
                "diverged_runs": int(np.isnan(v).sum()),
            }
            for k, v in accs.items()
        ],
        note=f"{cfg.steps} Adam steps of {cfg.batch} at lr {cfg.lr}, {cfg.seeds} seeds",
    )
    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    for j, k in enumerate(("cnn", "mlp")):
        ax[0, 0].scatter(np.full(cfg.seeds, j), accs[k], color=f"C{j}", zorder=3)
        ax[0, 0].bar(j, np.nanmean(accs[k]), color=f"C{j}", alpha=0.4)
    for i in range(cfg.seeds):
        ax[0, 0].plot([0, 1], [accs["cnn"][i], accs["mlp"][i]], color="gray", lw=0.6)
    ax[0, 0].set_xticks([0, 1], [f"CNN\n{params['cnn']}", f"MLP\n{params['mlp']}"])
    ax[0, 0].set(ylabel="test accuracy", title="equal parameter count (lines pair seeds)")
    for j, k in enumerate(("cnn", "mlp")):
        for c in curves[k]:
            ax[0, 1].plot(np.convolve(c, np.ones(25) / 25, mode="valid"), color=f"C{j}", lw=0.7)
        ax[0, 1].plot([], [], color=f"C{j}", label=k)
    ax[0, 1].set(xlabel="step", ylabel="training loss (25-step mean)", yscale="log")
    ax[0, 1].legend()
    ctx.figure("equal_params", fig, "CNN vs MLP with the same number of parameters.")
    ctx.note(f"Convolutions computed with {'our im2col conv2d' if cfg.ours else 'torch kernels'}.")
