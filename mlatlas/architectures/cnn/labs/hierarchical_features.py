"""Hierarchical features: what linear probes read from each stage, and receptive fields."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlatlas.architectures.cnn.data import images
from mlatlas.architectures.cnn.models import VGGSmall
from mlatlas.architectures.cnn.receptive import (
    geometry_of,
    gradient_fields,
    largest_mismatch,
    receptive_fields,
    smallest_growth,
)
from mlatlas.architectures.cnn.train import train_classifier
from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale


def probe(ftr: np.ndarray, ytr: np.ndarray, fte: np.ndarray, yte: np.ndarray) -> float:
    """Test accuracy of a logistic regression on standardised features."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(clf.fit(ftr, ytr).score(fte, yte))


@torch.no_grad()
def pooled_stages(model: VGGSmall, x: torch.Tensor) -> list[np.ndarray]:
    """The globally average-pooled output of every stage: (N, width) per stage."""
    model.eval()
    outs = [[] for _ in model.stages]
    for i in range(0, len(x), 1000):
        for s, f in enumerate(model.stage_outputs(x[i : i + 1000])):
            outs[s].append(f.mean(dim=(2, 3)))
    return [torch.cat(o).cpu().numpy() for o in outs]


@lab("cnn", insights=["hierarchical feature learning", "receptive fields"])
def hierarchical_features(ctx: Lab) -> None:
    """Deeper stages see more of the image, and training puts more linearly decodable class
    information into them than into the first stage.

    A VGG-style net with the *same width at every stage* is trained on Fashion-MNIST; a
    logistic-regression probe (Alain & Bengio 2017) is fitted on the globally pooled output of
    each stage, of the trained net and of the same net at its initialisation, on fixed probe
    images. The old claim ("probe accuracy rises from the first to the last stage") compared
    16-d with 64-d features on one seed and ignored the untrained baseline; here every probe
    sees as many features, and a second claim takes the untrained net out: the gain from
    training (trained minus initial probe accuracy) is larger at the last stage than at the
    first. Both over seeds.

    Receptive fields are measured, not only calculated: after every conv and pooling layer of
    each trained net (its own weights, BatchNorm statistics and max pools), the field of the
    centre unit is the bounding box of the input pixels where its gradient is non-zero, taken
    on a random canvas (`canvas` = 96 px square, larger than the field, so it is not clipped)
    and united over `canvases` of them (through a max pool one input reaches only part of the
    window). Two checks: the measured field grows at every layer, and it equals the one
    calculated from the layer geometry (Araujo et al. 2019) at every layer. A network of 1x1
    convolutions fails the first, a calculator that forgets the jump the second (both in the
    tests). A diverged net has no finite gradient, and fails both.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "fashion-mnist", "fashion-mnist"),
        n_train=per_scale(None, 10000, None),
        steps=per_scale(60, 400, 3000),
        batch=64,
        lr=1e-3,
        width=per_scale(8, 16, 32),
        stages=3,
        probe_n=per_scale(400, 3000, 10000),
        probe_test=per_scale(450, 2000, 10000),
        seeds=per_scale(2, 5, 10),
        ours=False,
        canvas=96,
        canvases=16,
    )
    widths = (cfg.width,) * cfg.stages
    data = images(cfg.dataset, fixed_rng("cnn", "images"), n_train=cfg.n_train)
    ctx.dataset(data.record)
    top = f"stage {cfg.stages}"
    rising = ctx.claim(
        f"With every stage {cfg.width} channels wide, the trained net's linear-probe accuracy "
        "is higher after the last stage than after the first",
        quantity=f"probe test accuracy of the trained net; a = {top}, b = stage 1",
        direction=">",
        margin=0.0,
        paired=True,
        insight="hierarchical feature learning",
    )
    gain = ctx.claim(
        "Training adds more linearly decodable class information at the last stage than at "
        "the first (probe accuracy gained over the same net at initialisation)",
        quantity=f"trained minus initial probe accuracy; a = {top}, b = stage 1",
        direction=">",
        margin=0.0,
        paired=True,
        insight="hierarchical feature learning",
    )
    pick = fixed_rng("cnn", "probe")
    itr = torch.from_numpy(pick.permutation(len(data.x_train))[: cfg.probe_n])
    ite = torch.from_numpy(pick.permutation(len(data.x_test))[: cfg.probe_test])
    xtr, ytr = data.x_train[itr], data.y_train[itr].cpu().numpy()
    xte, yte = data.x_test[ite], data.y_test[ite].cpu().numpy()
    pixels = probe(xtr.flatten(1).cpu().numpy(), ytr, xte.flatten(1).cpu().numpy(), yte)

    acc = {k: np.zeros((cfg.seeds, cfg.stages)) for k in ("trained", "initial")}
    net_acc, measured = [], []
    canvases = torch.from_numpy(
        fixed_rng("cnn", "canvases").random((cfg.canvases, 1) + (cfg.canvas,) * 2)
    )
    for rep in ctx.replicates(cfg.seeds):
        rep.seed_torch("init")
        model = VGGSmall(widths, data.n_classes, ours=cfg.ours)
        initial = copy.deepcopy(model).eval()
        fit = train_classifier(
            model,
            data.x_train,
            data.y_train,
            cfg.steps,
            cfg.batch,
            rep.rng("batches"),
            cfg.lr,
            ctx=ctx,
            desc=f"seed {rep.id}",
        )
        for kind, m in (("trained", model), ("initial", initial)):
            ftr, fte = pooled_stages(m, xtr), pooled_stages(m, xte)
            for s in range(cfg.stages):
                acc[kind][rep.id, s] = probe(ftr[s], ytr, fte[s], yte)
        net_acc.append(float((model(xte).argmax(-1).cpu().numpy() == yte).mean()))
        measured.append(gradient_fields([m for stage in model.stages for m in stage], canvases))
        t, u = acc["trained"][rep.id], acc["initial"][rep.id]
        if fit.diverged.any():
            t = np.full_like(t, np.nan)  # a diverged run is a failure, counted and shown
        rising.add(rep.id, t[-1], t[0])
        gain.add(rep.id, t[-1] - u[-1], t[0] - u[0])
        ctx.log(step=rep.id, first=t[0], last=t[-1], net=net_acc[-1])

    fields = [f.size for f in receptive_fields(geometry_of(model))]  # every conv and pool
    stage_fields = [fields[3 * i + 2] for i in range(cfg.stages)]  # conv, conv, pool
    growth = min(smallest_growth([f[axis] for f in m]) for m in measured for axis in (0, 1))
    ctx.check(
        "The receptive field measured on the trained nets grows at every conv and pooling layer",
        growth,
        direction=">",
        bound=0,
        quantity="smallest growth from one layer to the next of the measured field (px; "
        "height and width, every trained net)",
        insight="receptive fields",
    )
    ctx.check(
        f"The field calculated from the layer geometry ({fields} px) equals the measured one "
        "at every layer of every trained net",
        max(largest_mismatch(m, fields) for m in measured),
        direction="<=",
        bound=0,
        quantity="max |measured - calculated| receptive field, px (every layer, both axes, "
        "every trained net)",
        insight="receptive fields",
    )
    ctx.table(
        "receptive_fields",
        [
            {
                "layer": i + 1,
                "calculated": c,
                "measured_min": min(min(m[i]) for m in measured),
                "measured_max": max(max(m[i]) for m in measured),
            }
            for i, c in enumerate(fields)
        ],
        note=f"measured: gradient support of the centre unit on {cfg.canvases} random "
        f"{cfg.canvas}x{cfg.canvas} canvases, over {cfg.seeds} trained nets and both axes",
    )

    rows = [
        {
            "stage": "pixels",
            "receptive_field": 1,
            "features": xtr[0].numel(),
            "probe_trained": pixels,
            "probe_initial": pixels,
            "gain": 0.0,
        }
    ]
    for s in range(cfg.stages):
        t, u = acc["trained"][:, s], acc["initial"][:, s]
        rows.append(
            {
                "stage": s + 1,
                "receptive_field": stage_fields[s],
                "features": cfg.width,
                "probe_trained": t.mean(),
                "probe_initial": u.mean(),
                "gain": (t - u).mean(),
            }
        )
    ctx.table(
        "probes",
        rows,
        note=f"means over {cfg.seeds} seeds; probes fitted on {len(ytr)} pooled feature "
        f"vectors, scored on {len(yte)} test images; nets' own test accuracy "
        f"{np.mean(net_acc):.3f}",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    st = np.arange(1, cfg.stages + 1)
    for kind, style in (("trained", "o-"), ("initial", "s--")):
        ax[0, 0].plot(st, acc[kind].mean(0), style, label=kind)
        ax[0, 0].plot(st, acc[kind].T, style[1:], color="gray", lw=0.5, alpha=0.6)
    ax[0, 0].axhline(pixels, color="gray", ls=":", label="raw pixels")
    ax[0, 0].set(xlabel="stage", ylabel="probe accuracy", title="linear probes by depth")
    ax[0, 0].set_xticks(st)
    ax[0, 0].legend()
    layer = np.arange(1, len(fields) + 1)
    ax[0, 1].plot(layer, fields, "o-", label="calculated")
    ax[0, 1].plot(layer, [m[0] for m in measured[0]], "x", ms=9, label="measured (seed 0)")
    ax[0, 1].set(xlabel="conv / pool layer", ylabel="receptive field (px)", title="receptive field")
    ax[0, 1].set_xticks(layer)
    ax[0, 1].legend()
    ctx.figure(
        "probes",
        fig,
        "Linear-probe accuracy (grey: single seeds), and the receptive field after each conv "
        "and pooling layer, calculated and measured from gradients.",
    )
    ctx.note(f"Convolutions computed with {'our im2col conv2d' if cfg.ours else 'torch kernels'}.")
