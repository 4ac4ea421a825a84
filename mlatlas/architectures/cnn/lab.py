"""Labs of topic 5: LeNet on MNIST, translation, hierarchical features, parameter sharing.

Smoke scale uses scikit-learn's digits, upsampled to 28x28; default and full use MNIST and
Fashion-MNIST. Training uses PyTorch's convolution kernel unless `ours=True` (the two are
proven equal in the tests); each result says which ran.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from mlatlas.architectures.cnn.conv import conv2d
from mlatlas.architectures.cnn.models import LeNet5, VGGSmall
from mlatlas.architectures.cnn.receptive import geometry_of, receptive_fields
from mlatlas.core import Lab, lab, new_figure
from mlatlas.core.data import Split, image_classification
from mlatlas.core.stats import mean_ci
from mlatlas.core.train import accuracy, count_params, fit_classifier, make_mlp
from mlatlas.foundations.optim.schedules import cosine


def images(name: str, rng: np.random.Generator, n_train: int | None = None) -> Split:
    """Image tensors (N, 1, 28, 28); digits' 8x8 images are upsampled to 28x28."""
    return image_classification(name, rng, n_train=n_train, flatten=False, size=28)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate images by (dy, dx) pixels, filling with the background value (the minimum)."""
    out = torch.full_like(x, x.min().item())
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


@lab("cnn", insights=["hierarchical feature learning"])
def lenet_mnist(ctx: Lab) -> None:
    """LeNet-5 on MNIST: LeCun et al. (1998) report 0.95% test error.

    The modern variant (ReLU, max pooling) trained with Adam and a cosine learning-rate decay
    (topic 4's schedule) for about 10 epochs at default scale (the paper trained 20); the
    test error is compared with the paper's number.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        steps=(150, 4500, 10000),
        batch=128,
        lr=2e-3,
        ours=False,
    )
    data = images(cfg.dataset, ctx.rng)
    ctx.dataset(data.record)
    torch.manual_seed(ctx.seed)
    model = LeNet5(data.n_classes, ours=cfg.ours)
    bar = ctx.progress(range(cfg.steps), desc="steps")
    it = iter(bar)

    def on_step(step: int, loss: float) -> None:
        next(it, None)
        if step % 100 == 0:
            ctx.log(step=step, loss=loss)

    fit_classifier(
        model,
        data.x_train,
        data.y_train,
        cfg.steps,
        cfg.batch,
        ctx.rng,
        cfg.lr,
        on_step,
        schedule=cosine(cfg.lr, cfg.steps),
    )
    acc = accuracy(model, data.x_test, data.y_test)
    ctx.metric("test_accuracy", acc)
    ctx.metric("params", count_params(model))
    ctx.table(
        "lenet",
        [
            {"model": "LeNet-5 (this run)", "test_error": 1 - acc, "params": count_params(model)},
            {"model": "LeNet-5 (LeCun et al. 1998)", "test_error": 0.0095, "params": 60000},
        ],
        note=f"{cfg.steps} Adam steps of {cfg.batch}, cosine decay from lr {cfg.lr}",
    )
    w = model.features[0].weight.detach()
    fig, ax = new_figure(1, w.shape[0], size=(1.6 * w.shape[0], 1.8))
    for i in range(w.shape[0]):
        ax[0, i].imshow(w[i, 0].numpy(), cmap="gray")
        ax[0, i].set(xticks=[], yticks=[], title=f"C1 filter {i}")
        ax[0, i].grid(False)
    ctx.figure("c1_filters", fig, "The six 5x5 filters LeNet-5 learned in its first layer.")
    ctx.claim(
        "LeNet-5 reaches at least 99.0% test accuracy on MNIST (paper: 99.05%)",
        value=acc,
        holds=acc >= 0.99,
    )
    ctx.note(f"Convolutions computed with {'our im2col conv2d' if cfg.ours else 'torch kernels'}.")


@lab("cnn", insights=["Translation invariance"])
def translation(ctx: Lab) -> None:
    """Convolution is translation-equivariant exactly; a CNN's accuracy survives shifted test
    images better than an MLP's with the same number of parameters.

    conv(shift(x)) = shift(conv(x)) wherever the zero padding is not involved. Pooling adds a
    little invariance; the dense layers at the end are not equivariant, so the CNN is not
    fully shift-invariant either.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        steps=(150, 1500, 6000),
        batch=128,
        shifts=[0, 1, 2, 3, 4, 5, 6],
        seeds=(1, 2, 3),
        ours=False,
    )
    g = torch.Generator().manual_seed(ctx.seed)
    x = torch.randn(2, 3, 24, 24, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    d = 3
    lhs = conv2d(shift(x, d, d), w, padding=2)[..., 2 + d : -2, 2 + d : -2]
    rhs = shift(conv2d(x, w, padding=2), d, d)[..., 2 + d : -2, 2 + d : -2]
    err = (lhs - rhs).abs().max().item()
    ctx.claim(
        f"conv(shift(x)) equals shift(conv(x)) away from the borders (shift {d} px, max "
        "|difference| < 1e-10)",
        value=err,
        holds=err < 1e-10,
    )

    data = images(cfg.dataset, ctx.rng)
    ctx.dataset(data.record)
    cnn_params = count_params(LeNet5(data.n_classes))
    hidden = round((cnn_params - data.n_classes) / (28 * 28 + 1 + data.n_classes))
    acc = {
        "cnn": np.zeros((cfg.seeds, len(cfg.shifts))),
        "mlp": np.zeros((cfg.seeds, len(cfg.shifts))),
    }
    params = {}
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        for kind in ("cnn", "mlp"):
            torch.manual_seed(ctx.seed + s)
            if kind == "cnn":
                model = LeNet5(data.n_classes, ours=cfg.ours)
            else:
                model = torch.nn.Sequential(
                    torch.nn.Flatten(), make_mlp([784, hidden, data.n_classes])
                )
            params[kind] = count_params(model)
            fit_classifier(
                model, data.x_train, data.y_train, cfg.steps, cfg.batch, np.random.default_rng(s)
            )
            for j, k in enumerate(cfg.shifts):
                # average over the four directions
                accs = [
                    accuracy(model, shift(data.x_test, dy, dx), data.y_test)
                    for dy, dx in ((k, 0), (-k, 0), (0, k), (0, -k))
                ]
                acc[kind][s, j] = np.mean(accs)
            ctx.log(step=s, model=kind, acc_no_shift=acc[kind][s, 0], acc_4px=acc[kind][s, 4])
    rows = [
        {"shift_px": k, "cnn_acc": acc["cnn"][:, j].mean(), "mlp_acc": acc["mlp"][:, j].mean()}
        for j, k in enumerate(cfg.shifts)
    ]
    ctx.table(
        "accuracy_under_shift",
        rows,
        note=f"params: CNN {params['cnn']}, MLP {params['mlp']}; "
        f"mean over 4 directions, {cfg.seeds} seeds",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for kind in ("cnn", "mlp"):
        ax[0, 0].plot(cfg.shifts, acc[kind].mean(0), "o-", label=f"{kind} ({params[kind]} params)")
    ax[0, 0].set(
        xlabel="test-time shift (px)", ylabel="test accuracy", title="trained on centred digits"
    )
    ax[0, 0].legend()
    ctx.figure("shift", fig, "Accuracy under test-time translation, CNN vs MLP of equal size.")
    j4 = cfg.shifts.index(4)
    drop = {k: acc[k][:, 0] - acc[k][:, j4] for k in acc}
    mean, (lo, hi) = mean_ci(drop["mlp"] - drop["cnn"])
    ctx.claim(
        "Shifting test digits by 4 px costs the CNN less accuracy than the MLP with the same "
        "parameter count",
        value=mean,
        holds=lo > 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail=f"value: MLP drop - CNN drop; drops: CNN {drop['cnn'].mean():.3f}, "
        f"MLP {drop['mlp'].mean():.3f}",
    )
    ctx.note(f"Convolutions computed with {'our im2col conv2d' if cfg.ours else 'torch kernels'}.")


@lab("cnn", insights=["hierarchical feature learning", "receptive fields"])
def hierarchical_features(ctx: Lab) -> None:
    """Deeper stages see more of the image and carry more linearly decodable information.

    A VGG-style net is trained on Fashion-MNIST; a logistic-regression probe is then fitted
    on the globally pooled output of each stage (Alain & Bengio 2017), next to the receptive
    field each stage has (from the calculator).
    """
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        n_train=(None, 10000, None),
        steps=(100, 600, 4000),
        batch=128,
        widths=[16, 32, 64],
        probe_n=(400, 3000, 10000),
        ours=False,
    )
    data = images(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    torch.manual_seed(ctx.seed)
    model = VGGSmall(tuple(cfg.widths), data.n_classes, ours=cfg.ours)
    untrained = VGGSmall(tuple(cfg.widths), data.n_classes, ours=cfg.ours).eval()
    fit_classifier(model, data.x_train, data.y_train, cfg.steps, cfg.batch, ctx.rng)
    fields = receptive_fields(geometry_of(model))
    # the field after each stage's pool: every stage has conv, conv, pool
    stage_fields = [fields[3 * i + 2].size for i in range(len(cfg.widths))]
    n = min(cfg.probe_n, len(data.x_train))
    xtr, ytr = data.x_train[:n], data.y_train[:n].numpy()
    xte, yte = data.x_test[:2000], data.y_test[:2000].numpy()

    def probe(features_tr: np.ndarray, features_te: np.ndarray) -> float:
        clf = LogisticRegression(max_iter=2000).fit(features_tr, ytr)
        return float(clf.score(features_te, yte))

    rows = [
        {
            "stage": "pixels",
            "receptive_field": 1,
            "probe_acc_trained": probe(xtr.flatten(1).numpy(), xte.flatten(1).numpy()),
            "probe_acc_untrained": float("nan"),
        }
    ]
    with torch.no_grad():
        feats = {
            k: (m.stage_outputs(xtr), m.stage_outputs(xte))
            for k, m in (("trained", model), ("untrained", untrained))
        }
    for i in range(len(cfg.widths)):
        row = {"stage": i + 1, "receptive_field": stage_fields[i]}
        for k, (ftr, fte) in feats.items():
            row[f"probe_acc_{k}"] = probe(
                ftr[i].mean(dim=(2, 3)).numpy(), fte[i].mean(dim=(2, 3)).numpy()
            )
        rows.append(row)
        ctx.log(step=i + 1, probe=row["probe_acc_trained"])
    ctx.table("probes", rows, note=f"logistic regression on {n} pooled feature vectors per stage")
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    st = [r["stage"] for r in rows[1:]]
    ax[0, 0].plot(st, [r["probe_acc_trained"] for r in rows[1:]], "o-", label="trained")
    ax[0, 0].plot(st, [r["probe_acc_untrained"] for r in rows[1:]], "s--", label="untrained")
    ax[0, 0].axhline(rows[0]["probe_acc_trained"], color="gray", ls=":", label="pixels")
    ax[0, 0].set(xlabel="stage", ylabel="probe accuracy", title="linear probes by depth")
    ax[0, 0].legend()
    ax[0, 1].plot(st, stage_fields, "o-")
    ax[0, 1].set(xlabel="stage", ylabel="receptive field (px)", title="receptive field by depth")
    ctx.figure("probes", fig, "Linear-probe accuracy and receptive field by stage.")
    trained = [r["probe_acc_trained"] for r in rows[1:]]
    ctx.claim(
        "In the trained net, linear-probe accuracy rises from the first to the last stage",
        value=trained[-1] - trained[0],
        holds=trained[-1] > trained[0],
        insight="hierarchical feature learning",
        detail="value: last-stage minus first-stage probe accuracy (one seed)",
    )
    ctx.claim(
        f"Receptive fields grow with depth: {stage_fields} px after the stages",
        value=stage_fields[-1],
        holds=all(a < b for a, b in itertools.pairwise(stage_fields)),
        insight="receptive fields",
    )


@lab("cnn", insights=["Translation invariance"])
def parameter_sharing(ctx: Lab) -> None:
    """At equal parameter count a CNN beats an MLP on Fashion-MNIST: sharing weights across
    positions spends parameters on features instead of on positions."""
    cfg = ctx.config(
        dataset=("digits", "fashion-mnist", "fashion-mnist"),
        steps=(150, 1500, 8000),
        batch=128,
        seeds=(1, 3, 5),
        ours=False,
    )
    data = images(cfg.dataset, ctx.rng)
    ctx.dataset(data.record)
    cnn_params = count_params(LeNet5(data.n_classes))
    hidden = round((cnn_params - data.n_classes) / (28 * 28 + 1 + data.n_classes))
    accs: dict[str, list[float]] = {"cnn": [], "mlp": []}
    params = {}
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        for kind in accs:
            torch.manual_seed(ctx.seed + s)
            model = (
                LeNet5(data.n_classes, ours=cfg.ours)
                if kind == "cnn"
                else torch.nn.Sequential(
                    torch.nn.Flatten(), make_mlp([784, hidden, data.n_classes])
                )
            )
            params[kind] = count_params(model)
            fit_classifier(
                model, data.x_train, data.y_train, cfg.steps, cfg.batch, np.random.default_rng(s)
            )
            accs[kind].append(accuracy(model, data.x_test, data.y_test))
        ctx.log(step=s, cnn=accs["cnn"][-1], mlp=accs["mlp"][-1])
    ctx.table(
        "equal_parameters",
        [{"model": k, "params": params[k], "test_acc": float(np.mean(v))} for k, v in accs.items()],
        note=f"{cfg.steps} Adam steps, {cfg.seeds} seeds",
    )
    fig, ax = new_figure(1, 1, size=(4.5, 3.4))
    ax[0, 0].bar(
        [f"CNN\n{params['cnn']}", f"MLP\n{params['mlp']}"],
        [np.mean(accs["cnn"]), np.mean(accs["mlp"])],
    )
    ax[0, 0].set(ylim=(0.5, 1.0), ylabel="test accuracy", title="equal parameter count")
    ctx.figure("equal_params", fig, "CNN vs MLP with the same number of parameters.")
    mean, (lo, hi) = mean_ci(np.array(accs["cnn"]) - np.array(accs["mlp"]))
    ctx.claim(
        "With the same number of parameters, the CNN's test accuracy is higher than the MLP's",
        value=mean,
        holds=lo > 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
    )
