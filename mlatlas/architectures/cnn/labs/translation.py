"""Translation: convolution commutes with shifts; a CNN survives shifted digits better than
an MLP of equal size."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.architectures.cnn.conv import conv2d
from mlatlas.architectures.cnn.data import images, shift
from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.cnn.train import (
    correct,
    equal_params_mlp,
    train_classifier,
    train_ensemble,
)
from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.train import count_params

DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shifted_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Test accuracy with every image moved k px, averaged over up, down, left and right."""
    if k == 0:
        return float(correct(model, x, y).mean())
    return float(
        np.mean([correct(model, shift(x, k * a, k * b), y).mean().item() for a, b in DIRECTIONS])
    )


@lab("cnn", insights=["Translation invariance"])
def translation(ctx: Lab) -> None:
    """Convolution is translation-equivariant exactly; a CNN's accuracy survives shifted test
    images better than an MLP's with the same number of parameters.

    conv(shift(x)) = shift(conv(x)) wherever the zero padding is not involved: this follows
    from the definition, so it is a *check* on random inputs, not an experiment. Pooling adds
    a little invariance; the dense layers at the end are not equivariant, so the CNN is not
    fully shift-invariant either. The experiment trains LeNet-5 and an MLP with as many
    parameters on centred digits, one pair per seed (same batch stream for both arms), and
    compares the accuracy each loses when the test digits move 4 px (mean of four
    directions). Shifted accuracies are measured on a fixed subset of the test set.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        steps=per_scale(150, 1000, 6000),
        batch=128,
        lr=1e-3,
        shifts=[0, 1, 2, 3, 4, 5, 6],
        claim_shift=4,
        n_eval=per_scale(450, 2000, 10000),
        seeds=per_scale(2, 5, 10),
        ours=False,
    )
    x = torch.from_numpy(ctx.rng.standard_normal((2, 3, 24, 24)))
    w = torch.from_numpy(ctx.rng.standard_normal((4, 3, 5, 5)))
    d = 3
    lhs = conv2d(shift(x, d, d), w, padding=2)[..., 2 + d : -2, 2 + d : -2]
    rhs = shift(conv2d(x, w, padding=2), d, d)[..., 2 + d : -2, 2 + d : -2]
    ctx.check(
        f"conv(shift(x)) equals shift(conv(x)) away from the borders (shift {d} px, float64)",
        (lhs - rhs).abs().max().item(),
        direction="<",
        bound=1e-10,
        quantity="max |conv(shift(x)) - shift(conv(x))| over the interior, random x and w",
    )

    k = cfg.claim_shift
    drop = ctx.claim(
        f"Shifting test digits by {k} px costs the CNN less accuracy than the MLP with the same "
        "parameter count",
        quantity=f"accuracy lost at a {k}-px shift (unshifted minus shifted); a = CNN, b = MLP",
        direction="<",
        margin=0.0,
        paired=True,
    )
    data = images(cfg.dataset, fixed_rng("cnn", "images"))
    ctx.dataset(data.record)
    keep = torch.from_numpy(fixed_rng("cnn", "eval").permutation(len(data.x_test))[: cfg.n_eval])
    xe, ye = data.x_test[keep], data.y_test[keep]
    cnn_params = count_params(LeNet5(data.n_classes))

    reps = list(ctx.replicates(cfg.seeds))
    acc = {kind: np.zeros((cfg.seeds, len(cfg.shifts))) for kind in ("cnn", "mlp")}
    mlps = []
    for rep in reps:
        rep.seed_torch("init")
        mlps.append(equal_params_mlp(cnn_params, data.n_classes))
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
    failed = {"cnn": [], "mlp": [i for i in range(len(reps)) if fit_mlp.diverged[i]]}
    params = {"cnn": cnn_params, "mlp": count_params(mlps[0])}
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
        if fit_cnn.diverged.any():
            failed["cnn"].append(i)
        for kind, model in (("cnn", cnn), ("mlp", ens.member(i))):
            for j, s in enumerate(cfg.shifts):
                acc[kind][i, j] = shifted_accuracy(model, xe, ye, s)
        j = cfg.shifts.index(k)
        lost = {kind: acc[kind][i, 0] - acc[kind][i, j] for kind in acc}
        # a diverged run is a failure (NaN): counted and shown, never scored as "no loss"
        a, b = (np.nan if i in failed[kind] else lost[kind] for kind in ("cnn", "mlp"))
        drop.add(rep.id, a, b)
        ctx.log(step=rep.id, cnn_drop=a, mlp_drop=b)

    rows = [
        {
            "shift_px": s,
            "cnn_acc": acc["cnn"][:, j].mean(),
            "cnn_acc_sd": acc["cnn"][:, j].std(ddof=1) if cfg.seeds > 1 else 0.0,
            "mlp_acc": acc["mlp"][:, j].mean(),
            "mlp_acc_sd": acc["mlp"][:, j].std(ddof=1) if cfg.seeds > 1 else 0.0,
        }
        for j, s in enumerate(cfg.shifts)
    ]
    ctx.table(
        "accuracy_under_shift",
        rows,
        note=f"params: CNN {params['cnn']}, MLP {params['mlp']}; mean over 4 directions and "
        f"{cfg.seeds} seeds, {len(ye)} fixed test images; failed runs: {failed}",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for kind in ("cnn", "mlp"):
        m = acc[kind].mean(0)
        ax[0, 0].plot(cfg.shifts, m, "o-", label=f"{kind} ({params[kind]} params)")
        ax[0, 0].plot(cfg.shifts, acc[kind].T, color="gray", lw=0.5, alpha=0.5)
    ax[0, 0].set(
        xlabel="test-time shift (px)", ylabel="test accuracy", title="trained on centred digits"
    )
    ax[0, 0].legend()
    ctx.figure(
        "shift",
        fig,
        "Accuracy under test-time translation, CNN vs MLP of equal size (grey: single seeds).",
    )
    ctx.metric("failed_runs", failed)
    ctx.note(f"Convolutions computed with {'our im2col conv2d' if cfg.ours else 'torch kernels'}.")
