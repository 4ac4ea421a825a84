"""Lab: a vision transformer against LeNet-5 on MNIST and Fashion-MNIST."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.transformers.models import ViT
from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import image_classification
from mlatlas.core.seeding import fixed_rng
from mlatlas.core.train import count_params, fit_classifier
from mlatlas.foundations.optim.schedules import warmup_cosine


@torch.no_grad()
def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """1.0 where the model classifies a test example correctly, else 0.0."""
    model.eval()
    pred = torch.cat([model(x[i : i + 2000]).argmax(-1) for i in range(0, len(x), 2000)])
    return (pred == y).double().cpu().numpy()


@lab("transformers", insights=["parallelizable sequence modeling"])
def vit(ctx: Lab) -> None:
    """A vision transformer on MNIST and Fashion-MNIST: 7x7 patches as tokens, no convolution.

    Dosovitskiy et al. (2021) found ViTs need large data to beat CNNs; at this scale the
    comparison with LeNet-5 (topic 5) shows what the missing convolutional prior costs.

    One training run per model and dataset: a ViT run costs about half a minute of the
    2-core CPU, so five seeds of both models on both datasets would not fit the topic's budget. The
    samples of both claims are therefore the test examples (unit "item": 1 if classified
    correctly, else 0; paired by example for the comparison): their intervals cover the
    sampling of the test set, not seed-to-seed variation of training. Both models see the
    same batches in the same order. The default scale trains 1000 steps (batch 128, about
    two epochs; the single-seed version trained 2000) to fit the topic's budget.
    """
    cfg = ctx.config(
        datasets=per_scale(["digits"], ["mnist", "fashion-mnist"], ["mnist", "fashion-mnist"]),
        patch=7,
        d=64,
        heads=4,
        layers=4,
        steps=per_scale(60, 1000, 10000),
        batch=128,
        lr=1e-3,
    )
    first = cfg.datasets[0]
    high = ctx.claim(
        f"The ViT reaches at least 95% test accuracy on {first} with patches as its only "
        "notion of space",
        quantity=f"per test example of {first}: 1 if the ViT classifies it correctly, else 0",
        direction=">",
        margin=0.95,
        unit="item",
    )
    wins = ctx.claim(
        "At this small scale the convolutional prior still wins: LeNet-5 beats the ViT on every "
        "dataset",
        quantity="per test example: a = LeNet-5 correct (1/0), b = ViT correct (1/0); one part "
        "per dataset",
        direction=">",
        margin=0.0,
        paired=True,
        unit="item",
    )
    (rep,) = ctx.replicates(1, desc="run")
    rows, acc = [], {}
    for name in cfg.datasets:
        data = image_classification(name, fixed_rng("vit", name), flatten=False, size=28)
        ctx.dataset(data.record)
        correct = {}
        for kind in ("vit", "lenet5"):
            rep.seed_torch("init", name, kind)
            model = (
                ViT(28, cfg.patch, 1, cfg.d, cfg.heads, cfg.layers, data.n_classes)
                if kind == "vit"
                else LeNet5(data.n_classes)
            )
            fit_classifier(
                model,
                data.x_train,
                data.y_train,
                cfg.steps,
                cfg.batch,
                rep.rng("batches", name),
                cfg.lr,
                schedule=warmup_cosine(cfg.lr, cfg.steps // 20, cfg.steps, start_factor=0.1),
                ctx=ctx,
            )
            correct[kind] = _correct(model, data.x_test, data.y_test)
            acc[(name, kind)] = float(correct[kind].mean())
            rows.append(
                {
                    "dataset": name,
                    "model": kind,
                    "params": count_params(model),
                    "test_acc": acc[(name, kind)],
                }
            )
            ctx.log(step=None, dataset=name, model=kind, test_acc=acc[(name, kind)])
        if name == first:
            high.add_all(correct["vit"])
        for i, (a, b) in enumerate(zip(correct["lenet5"], correct["vit"], strict=True)):
            wins.add(i, a, b, part=name)
    ctx.table(
        "vit",
        rows,
        note=f"{cfg.steps} Adam steps with warmup + cosine, batch {cfg.batch}, the same "
        "batches for both models; one training run each",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.4))
    for j, kind in enumerate(("vit", "lenet5")):
        ax[0, 0].bar(
            np.arange(len(cfg.datasets)) + 0.38 * j,
            [acc[(n, kind)] for n in cfg.datasets],
            0.36,
            label=kind,
        )
    ax[0, 0].set_xticks(np.arange(len(cfg.datasets)) + 0.19, cfg.datasets)
    ax[0, 0].set(ylim=(0.5, 1.0), ylabel="test accuracy")
    ax[0, 0].legend()
    ctx.figure("vit", fig, "ViT and LeNet-5 at the same training budget.")
