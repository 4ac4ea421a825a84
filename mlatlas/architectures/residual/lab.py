"""Labs of topic 8: degradation, gradient flow with depth, lesions, DenseNet vs ResNet.

Default scale trains on Fashion-MNIST resized to 14x14 with narrow stages (8, 16, 32
channels), so that nets of 8 to 32 layers train in minutes on a CPU; smoke uses digits.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.residual.blocks import BasicBlock, CifarResNet, DenseNet
from mlatlas.core import Lab, lab, new_figure
from mlatlas.core.data import Split, image_classification
from mlatlas.core.stats import mean_ci
from mlatlas.core.train import accuracy, batches_for_steps, count_params


def small_images(cfg, rng: np.random.Generator) -> Split:
    return image_classification(cfg.dataset, rng, n_train=cfg.n_train, flatten=False, size=cfg.size)


def train_sgd(
    model: nn.Module, data: Split, steps: int, batch: int, lr: float, seed: int
) -> nn.Module:
    """SGD with momentum 0.9 and a cosine-decayed lr, as He et al. (2016) train (shorter)."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for idx in batches_for_steps(len(data.x_train), batch, steps, np.random.default_rng(seed)):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
        sched.step()
    return model.eval()


@lab("residual", insights=["network depth vs width", "Identity mappings"])
def degradation(ctx: Lab) -> None:
    """Deeper plain nets get higher *training* error; residual nets of the same depth do not.

    He et al. (2016, Fig. 1) saw a 56-layer plain net train worse than a 20-layer one:
    not overfitting but an optimisation failure. The same nets with identity shortcuts
    train better as they get deeper. Here: plain and residual versions of CIFAR-style
    nets with 6n + 2 layers, same optimizer and budget.
    """
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(None, 20000, None),
        size=(8, 14, 28),
        ns=([1, 3], [1, 3, 5], [3, 5, 9]),
        widths=[8, 16, 32],
        steps=(100, 600, 5000),
        batch=(64, 64, 128),
        lr=0.05,
        seeds=(1, 2, 3),
    )
    data = small_images(cfg, ctx.rng)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    probe = data.x_train[:4000], data.y_train[:4000]
    err: dict[tuple[str, int], list[float]] = {}
    test_err: dict[tuple[str, int], list[float]] = {}
    for n in ctx.progress(cfg.ns, desc="depths"):
        for kind in ("plain", "residual"):
            for s in range(cfg.seeds):
                torch.manual_seed(ctx.seed + s)
                model = CifarResNet(
                    n, tuple(cfg.widths), data.n_classes, residual=kind == "residual"
                )
                train_sgd(model, data, cfg.steps, cfg.batch, cfg.lr, ctx.seed + s)
                err.setdefault((kind, n), []).append(1 - accuracy(model, *probe))
                test_err.setdefault((kind, n), []).append(
                    1 - accuracy(model, data.x_test, data.y_test)
                )
            ctx.log(step=6 * n + 2, kind=kind, train_error=float(np.mean(err[(kind, n)])))
    rows = [
        {
            "layers": 6 * n + 2,
            "kind": kind,
            "train_error": float(np.mean(err[(kind, n)])),
            "test_error": float(np.mean(test_err[(kind, n)])),
        }
        for n in cfg.ns
        for kind in ("plain", "residual")
    ]
    ctx.table(
        "errors",
        rows,
        note=f"{cfg.steps} SGD steps, {cfg.seeds} seeds; train error on 4000 training images",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    depths = [6 * n + 2 for n in cfg.ns]
    for kind in ("plain", "residual"):
        ax[0, 0].plot(depths, [np.mean(err[(kind, n)]) for n in cfg.ns], "o-", label=kind)
    ax[0, 0].set(xlabel="layers", ylabel="training error", title="degradation")
    ax[0, 0].legend()
    ctx.figure("degradation", fig, "Training error against depth, plain vs residual.")
    lo_n, hi_n = cfg.ns[0], cfg.ns[-1]
    m, (lo, hi) = mean_ci(np.array(err[("plain", hi_n)]) - np.array(err[("plain", lo_n)]))
    ctx.claim(
        f"The {6 * hi_n + 2}-layer plain net has higher training error than the "
        f"{6 * lo_n + 2}-layer plain net",
        value=m,
        holds=lo > 0,
        insight="network depth vs width",
        interval=(lo, hi),
        seeds=cfg.seeds,
    )
    m, (lo, hi) = mean_ci(np.array(err[("residual", hi_n)]) - np.array(err[("residual", lo_n)]))
    ctx.claim(
        f"The {6 * hi_n + 2}-layer residual net has no higher training error than the "
        f"{6 * lo_n + 2}-layer one",
        value=m,
        holds=hi <= 0.005,
        insight="Identity mappings",
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail="holds when the interval of the difference (deep - shallow) is at most +0.5 points",
    )
    m, (lo, hi) = mean_ci(np.array(err[("plain", hi_n)]) - np.array(err[("residual", hi_n)]))
    ctx.claim(
        f"At {6 * hi_n + 2} layers the residual net trains to lower error than the plain net",
        value=m,
        holds=lo > 0,
        insight="Identity mappings",
        interval=(lo, hi),
        seeds=cfg.seeds,
    )


@lab("residual", insights=["gradient flow"])
def gradient_with_depth(ctx: Lab) -> None:
    """At initialisation, how much gradient reaches the first layer as depth grows.

    Without shortcuts the gradient reaching the stem passes through every block's Jacobian;
    with identity shortcuts it also has a direct path (He et al. 2016b).
    """
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(500, 2000, 2000),
        size=(8, 14, 28),
        ns=([1, 3, 9], [1, 3, 9, 18], [1, 3, 9, 18, 36]),
        widths=[8, 16, 32],
        batch=128,
        seeds=(2, 3, 5),
    )
    data = small_images(cfg, ctx.rng)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    x, y = data.x_train[: cfg.batch], data.y_train[: cfg.batch]
    norms: dict[tuple[str, int], list[float]] = {}
    for n in ctx.progress(cfg.ns, desc="depths"):
        for kind in ("plain", "residual"):
            for s in range(cfg.seeds):
                torch.manual_seed(ctx.seed + s)
                model = CifarResNet(
                    n, tuple(cfg.widths), data.n_classes, residual=kind == "residual"
                )
                F.cross_entropy(model(x), y).backward()
                norms.setdefault((kind, n), []).append(model.stem[0].weight.grad.norm().item())
    rows = [
        {
            "layers": 6 * n + 2,
            "kind": kind,
            "stem_grad_norm": float(np.exp(np.mean(np.log(norms[(kind, n)])))),
        }
        for n in cfg.ns
        for kind in ("plain", "residual")
    ]
    ctx.table(
        "stem_gradient",
        rows,
        note=f"geometric mean over {cfg.seeds} seeds, PyTorch's default init, BN in training mode",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    depths = [6 * n + 2 for n in cfg.ns]
    for kind in ("plain", "residual"):
        ax[0, 0].semilogy(
            depths, [np.exp(np.mean(np.log(norms[(kind, n)]))) for n in cfg.ns], "o-", label=kind
        )
    ax[0, 0].set(
        xlabel="layers", ylabel="||dL/dW_stem||", title="gradient at the first layer, at init"
    )
    ax[0, 0].legend()
    ctx.figure("stem_gradient", fig, "First-layer gradient norm against depth.")
    g = {k: np.exp(np.mean(np.log(v))) for k, v in norms.items()}
    lo_n, hi_n = cfg.ns[0], cfg.ns[-1]
    plain_ratio = g[("plain", hi_n)] / g[("plain", lo_n)]
    res_ratio = g[("residual", hi_n)] / g[("residual", lo_n)]
    ctx.claim(
        f"From {6 * lo_n + 2} to {6 * hi_n + 2} layers the plain net's first-layer gradient "
        "shrinks more than the residual net's",
        value=plain_ratio / res_ratio,
        holds=plain_ratio < res_ratio,
        seeds=cfg.seeds,
        detail=f"ratio deep/shallow: plain {plain_ratio:.3g}, residual {res_ratio:.3g}",
    )
    if plain_ratio > 1:
        ctx.note(
            f"The plain net's first-layer gradient grew {plain_ratio:.3g}x with depth instead of "
            "vanishing: with batch normalisation in training mode, deep plain nets' gradients "
            "explode at init (Yang et al. 2019, a mean-field theory of batch normalization)."
        )


class Lesioned(nn.Module):
    """Skips one block: a residual block becomes its shortcut, a plain block the identity."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.block.shortcut(x)) if self.block.residual else x


@lab("residual", insights=["Identity mappings"])
def lesion(ctx: Lab) -> None:
    """Remove one block at test time: residual nets degrade gracefully, plain nets collapse.

    Veit, Wilber & Belongie (2016) deleted single blocks of a trained ResNet and saw small
    losses, but chance-level accuracy for a plain net (the unraveled view: a ResNet behaves
    like an ensemble of many paths of different lengths).
    """
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(None, 20000, None),
        size=(8, 14, 28),
        n=(2, 3, 9),
        widths=[8, 16, 32],
        steps=(100, 600, 5000),
        batch=(64, 64, 128),
        lr=0.05,
        seeds=(1, 2, 3),
    )
    data = small_images(cfg, ctx.rng)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    drops: dict[str, list[float]] = {"plain": [], "residual": []}
    rows = []
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        for kind in drops:
            torch.manual_seed(ctx.seed + s)
            model = CifarResNet(
                cfg.n, tuple(cfg.widths), data.n_classes, residual=kind == "residual"
            )
            train_sgd(model, data, cfg.steps, cfg.batch, cfg.lr, ctx.seed + s)
            base = accuracy(model, data.x_test, data.y_test)
            for i, block in enumerate(model.blocks):
                if block.f[0].stride != (1, 1):
                    continue  # a downsampling block has no identity to fall back on
                model.blocks[i] = Lesioned(block)
                acc = accuracy(model, data.x_test, data.y_test)
                model.blocks[i] = block
                drops[kind].append(base - acc)
                rows.append(
                    {"seed": s, "kind": kind, "block": i, "intact_acc": base, "lesioned_acc": acc}
                )
        ctx.log(
            step=s,
            plain_drop=float(np.mean(drops["plain"])),
            residual_drop=float(np.mean(drops["residual"])),
        )
    ctx.table(
        "lesions",
        rows,
        note=f"{6 * cfg.n + 2}-layer nets; one non-downsampling block removed at a time",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for kind, d in drops.items():
        ax[0, 0].hist(d, bins=20, alpha=0.6, label=kind)
    ax[0, 0].set(xlabel="accuracy lost by removing one block", ylabel="count", title="lesion study")
    ax[0, 0].legend()
    ctx.figure("lesion", fig, "Accuracy lost when a single block is removed at test time.")
    m, (lo, hi) = mean_ci(drops["plain"])
    mr, (lor, hir) = mean_ci(drops["residual"])
    ctx.claim(
        "Removing a single block costs the residual net less accuracy than the plain net",
        value=m - mr,
        holds=lo > hir,
        interval=(lo - hir, hi - lor),
        seeds=cfg.seeds,
        detail=f"mean drop: plain {m:.3f}, residual {mr:.3f}",
    )
    ctx.claim(
        "The residual net keeps its accuracy within 10 points when one block is removed "
        "(mean over blocks)",
        value=mr,
        holds=hir < 0.10,
        interval=(lor, hir),
        seeds=cfg.seeds,
    )


@lab("residual", insights=["network depth vs width", "gradient flow"])
def densenet_vs_resnet(ctx: Lab) -> None:
    """DenseNet concatenates every earlier feature map instead of adding: Huang et al. (2017)
    report ResNet-level accuracy with fewer parameters. Both trained alike here."""
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(None, 20000, None),
        size=(8, 14, 28),
        resnet_n=3,
        widths=[8, 16, 32],
        growth=6,
        dense_layers=[4, 4, 4],
        steps=(100, 600, 5000),
        batch=(64, 64, 128),
        lr=0.05,
        seeds=(1, 2, 3),
    )
    data = small_images(cfg, ctx.rng)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    accs: dict[str, list[float]] = {"resnet": [], "densenet": []}
    params = {}
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        for kind in accs:
            torch.manual_seed(ctx.seed + s)
            if kind == "resnet":
                model: nn.Module = CifarResNet(cfg.resnet_n, tuple(cfg.widths), data.n_classes)
            else:
                model = DenseNet(cfg.growth, tuple(cfg.dense_layers), data.n_classes)
            params[kind] = count_params(model)
            train_sgd(model, data, cfg.steps, cfg.batch, cfg.lr, ctx.seed + s)
            accs[kind].append(accuracy(model, data.x_test, data.y_test))
        ctx.log(step=s, resnet=accs["resnet"][-1], densenet=accs["densenet"][-1])
    rows = [
        {
            "model": k,
            "params": params[k],
            "test_acc": float(np.mean(v)),
            "acc_per_10k_params": float(np.mean(v)) / params[k] * 1e4,
        }
        for k, v in accs.items()
    ]
    ctx.table("models", rows, note=f"{cfg.steps} SGD steps, {cfg.seeds} seeds")
    fig, ax = new_figure(1, 1, size=(5, 3.6))
    for k in accs:
        ax[0, 0].scatter(params[k], np.mean(accs[k]), s=60, label=k)
    ax[0, 0].set(xlabel="parameters", ylabel="test accuracy", title="accuracy per parameter")
    ax[0, 0].legend()
    ctx.figure("dense_vs_res", fig, "Test accuracy against parameter count.")
    m, (lo, hi) = mean_ci(np.array(accs["densenet"]) - np.array(accs["resnet"]))
    ctx.claim(
        f"DenseNet ({params['densenet']} params) is at least as accurate as ResNet-"
        f"{6 * cfg.resnet_n + 2} ({params['resnet']} params) with fewer parameters",
        value=m,
        holds=params["densenet"] < params["resnet"] and lo > -0.005,
        insight="network depth vs width",
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail="value: accuracy difference DenseNet - ResNet; 'at least as accurate' means the "
        "interval lies above -0.5 points",
    )
