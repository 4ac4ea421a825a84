"""Lab: a vision transformer against LeNet-5 on MNIST and Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.transformers.models import ViT
from mlatlas.core import Ensemble, Lab, fit, lab, new_figure, per_scale
from mlatlas.core.data import image_classification
from mlatlas.core.ensemble import ensemble_cross_entropy, member_accuracy, member_batches
from mlatlas.core.seeding import fixed_rng
from mlatlas.core.train import batches_for_steps, count_params
from mlatlas.foundations.optim.schedules import warmup_cosine


@lab("transformers", insights=["parallelizable sequence modeling"])
def vit(ctx: Lab) -> None:
    """A vision transformer on MNIST and Fashion-MNIST: 7x7 patches as tokens, no convolution.

    Dosovitskiy et al. (2021) found ViTs need large data to beat CNNs; at this scale the
    comparison with LeNet-5 (topic 5) shows what the missing convolutional prior costs.

    Both claims are over seeds: every replicate trains one ViT and one LeNet-5 per dataset,
    paired by seed id (the same batches in the same order for both models of a replicate).
    Each model's replicates train as one batched ensemble (no BatchNorm in either: the
    members are exactly independent Adam runs), and every fit result is kept. A replicate
    whose loss diverges counts at chance (0.1, ten classes) for "the ViT reaches 95%",
    against it; in the comparison a diverged run of either model is a failure the core counts and
    that makes the part inconclusive, so a broken ViT can never make LeNet-5 look better.
    The default scale trains 600 steps (batch 128, about 1.3 epochs) so that five
    replicates of both models on both datasets fit the topic's budget.
    """
    cfg = ctx.config(
        datasets=per_scale(["digits"], ["mnist", "fashion-mnist"], ["mnist", "fashion-mnist"]),
        patch=7,
        d=64,
        heads=4,
        layers=4,
        steps=per_scale(60, 600, 10000),
        batch=128,
        lr=1e-3,
        seeds=per_scale(2, 5, 10),
    )
    first = cfg.datasets[0]
    high = ctx.claim(
        f"The ViT reaches at least 95% test accuracy on {first} with patches as its only "
        "notion of space",
        quantity=f"ViT test accuracy on {first}, one sample per seed",
        direction=">",
        margin=0.95,
        on_failure=0.1,
    )
    wins = ctx.claim(
        "At this small scale the convolutional prior still wins: LeNet-5 beats the ViT on every "
        "dataset",
        quantity="test accuracy, a = LeNet-5, b = ViT, paired by seed id; one part per dataset",
        direction=">",
        margin=0.0,
        paired=True,
    )
    reps = list(ctx.replicates(cfg.seeds, desc="replicates"))
    rows, acc, curves = [], {}, {}
    for name in cfg.datasets:
        data = image_classification(name, fixed_rng("vit", name), flatten=False, size=28)
        ctx.dataset(data.record)
        for kind in ("vit", "lenet5"):
            members = []
            for rep in reps:
                rep.seed_torch("init", name, kind)
                members.append(
                    ViT(28, cfg.patch, 1, cfg.d, cfg.heads, cfg.layers, data.n_classes)
                    if kind == "vit"
                    else LeNet5(data.n_classes)
                )
            ens = Ensemble(members)
            streams = [  # the same stream for both models of a replicate
                batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, rep.rng("batches", name))
                for rep in reps
            ]
            res = fit(
                ens,
                torch.optim.Adam(ens.parameters(), lr=cfg.lr),
                ensemble_cross_entropy(data.x_train, data.y_train),
                member_batches(streams),
                cfg.steps,
                ctx=ctx,
                desc=f"{name} {kind}",
                schedule=warmup_cosine(cfg.lr, cfg.steps // 20, cfg.steps, start_factor=0.1),
                log_every=100,
            )
            a = member_accuracy(ens, data.x_test, data.y_test)
            a[np.atleast_1d(res.diverged)] = np.nan  # a diverged run has no accuracy
            acc[(name, kind)] = a
            curves[(name, kind)] = res.losses
            rows.append(
                {
                    "dataset": name,
                    "model": kind,
                    "params": count_params(members[0]),
                    "test_acc_mean": float(np.nanmean(a)) if not np.isnan(a).all() else None,
                    "test_acc_min": float(np.nanmin(a)) if not np.isnan(a).all() else None,
                    "diverged": int(np.isnan(a).sum()),
                    "final_loss_mean": float(np.nanmean(res.losses[-20:])),
                }
            )
            ctx.log(step=None, dataset=name, model=kind, test_acc=rows[-1]["test_acc_mean"])
        for rep in reps:
            if name == first:
                high.add(rep.id, acc[(name, "vit")][rep.id])
            wins.add(rep.id, acc[(name, "lenet5")][rep.id], acc[(name, "vit")][rep.id], part=name)
    ctx.table(
        "vit",
        rows,
        note=f"{cfg.steps} Adam steps with warmup + cosine, batch {cfg.batch}, {cfg.seeds} "
        "replicates per model (batched ensembles), the same batches for both models of a "
        "replicate; final_loss_mean: training loss over the last 20 steps",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.4))
    for j, kind in enumerate(("vit", "lenet5")):
        x = np.arange(len(cfg.datasets)) + 0.38 * j
        ax[0, 0].bar(x, [np.nanmean(acc[(n, kind)]) for n in cfg.datasets], 0.36, label=kind)
        for xi, n in zip(x, cfg.datasets, strict=True):
            ax[0, 0].plot([xi] * cfg.seeds, acc[(n, kind)], "k.", alpha=0.6)
        ax[0, 1].plot(curves[(first, kind)].mean(1), label=kind)
    ax[0, 0].set_xticks(np.arange(len(cfg.datasets)) + 0.19, cfg.datasets)
    ax[0, 0].set(ylim=(0.5, 1.0), ylabel="test accuracy")
    ax[0, 0].legend()
    ax[0, 1].set(xlabel="step", ylabel=f"training loss on {first} (mean)", yscale="log")
    ax[0, 1].legend()
    ctx.figure(
        "vit",
        fig,
        "ViT and LeNet-5 at the same training budget (bars: mean over replicates; dots: "
        "replicates), and their training loss.",
    )
