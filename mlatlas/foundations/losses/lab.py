"""Labs of topic 3: MSE vs cross-entropy, focal loss on imbalanced data, a contrastive
embedding, curriculum learning. Smoke scale uses scikit-learn's digits; default and full
use MNIST from the dataset registry.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score, balanced_accuracy_score, recall_score
from sklearn.neighbors import KNeighborsClassifier

from mlatlas.core import Lab, bootstrap_ci, lab, new_figure
from mlatlas.core.data import image_classification
from mlatlas.core.stats import mean_ci
from mlatlas.core.train import accuracy, batches_for_steps, make_mlp
from mlatlas.foundations.losses.functions import (
    bce_with_logits,
    cross_entropy,
    focal_binary,
    log_sigmoid,
    mse,
    nt_xent,
    triplet,
)

# ------------------------------------------------------------------------------------
# MSE vs cross-entropy
# ------------------------------------------------------------------------------------


@lab("losses", insights=["Task-specific losses"])
def mse_vs_ce(ctx: Lab) -> None:
    """Cross-entropy keeps a strong gradient when the model is confidently wrong; MSE on
    probabilities does not.

    With p = softmax(z), dCE/dz = p - onehot(y): if the true class has p_y -> 0, the gradient
    on z_y tends to -1. Squared error on p has dMSE/dz = J_softmax^T 2(p - onehot), and the
    softmax Jacobian vanishes as p saturates, so a confidently wrong model barely learns
    (Golik et al. 2013 compare the two for classification).
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        n_train=(None, 20000, None),
        hidden=[256],
        steps=(200, 1500, 6000),
        batch=128,
        lrs=[0.03, 0.1, 0.3, 1.0],
        seeds=(1, 3, 5),
        eval_every=(20, 100, 250),
    )
    # 1. gradient at a confidently wrong logit, 10 classes
    margins = np.linspace(0, 20, 41)
    rows = []
    for m in margins:
        z = torch.zeros(1, 10, dtype=torch.float64)
        z[0, 1] = m  # the model puts its mass on class 1; the truth is class 0
        y = torch.tensor([0])
        zc, zm = z.clone().requires_grad_(), z.clone().requires_grad_()
        cross_entropy(zc, y).backward()
        mse(torch.softmax(zm, 1), F.one_hot(y, 10).double()).backward()
        rows.append(
            {
                "wrong_margin": float(m),
                "p_true": torch.softmax(z, 1)[0, 0].item(),
                "|dCE/dz_true|": zc.grad[0, 0].abs().item(),
                "|dMSE/dz_true|": zm.grad[0, 0].abs().item(),
            }
        )
    ctx.table("gradient_when_wrong", rows[::5], note="10 classes, all logits 0 but the wrong one")
    at10 = next(r for r in rows if r["wrong_margin"] == 10.0)
    ratio = at10["|dMSE/dz_true|"] / at10["|dCE/dz_true|"]
    ctx.claim(
        "When the wrong class leads by 10 logits, MSE's gradient on the true logit is below "
        "1e-3 of cross-entropy's",
        value=ratio,
        holds=ratio < 1e-3,
    )

    # 2. training curves, each loss at its best lr from the same grid
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    sizes = [data.x_train.shape[1], *cfg.hidden, data.n_classes]
    onehot = F.one_hot(data.y_train, data.n_classes).float()
    losses = {
        "cross_entropy": lambda z, idx: cross_entropy(z, data.y_train[idx]),
        "mse_on_softmax": lambda z, idx: mse(torch.softmax(z, 1), onehot[idx]) * data.n_classes,
    }
    best: dict[str, dict] = {}
    for name, loss_fn in ctx.progress(list(losses.items()), desc="losses"):
        for lr in cfg.lrs:
            accs, curves = [], []
            for s in range(cfg.seeds):
                torch.manual_seed(ctx.seed + s)
                model = make_mlp(sizes)
                opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
                curve = []
                rng = np.random.default_rng(ctx.seed + s)
                batches = batches_for_steps(len(data.x_train), cfg.batch, cfg.steps, rng)
                for step, idx in enumerate(batches, 1):
                    opt.zero_grad()
                    loss_fn(model(data.x_train[idx]), idx).backward()
                    opt.step()
                    if step % cfg.eval_every == 0:
                        curve.append(accuracy(model, data.x_test[:2000], data.y_test[:2000]))
                acc = accuracy(model, data.x_test, data.y_test)
                accs.append(acc if math.isfinite(acc) else 0.0)
                curves.append(curve)
            if name not in best or np.mean(accs) > np.mean(best[name]["accs"]):
                best[name] = {"lr": lr, "accs": accs, "curve": np.mean(curves, axis=0)}
        ctx.log(
            step=None, loss=name, best_lr=best[name]["lr"], acc=float(np.mean(best[name]["accs"]))
        )
    table = []
    for name, b in best.items():
        lo, hi = bootstrap_ci(b["accs"])
        table.append(
            {
                "loss": name,
                "best_lr": b["lr"],
                "test_acc": float(np.mean(b["accs"])),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    ctx.table(
        "training",
        table,
        note=f"{cfg.steps} SGD+momentum steps, best lr of {cfg.lrs}, {cfg.seeds} seeds",
    )

    fig, ax = new_figure(1, 2, size=(10, 3.6))
    ax[0, 0].semilogy(margins, [r["|dCE/dz_true|"] for r in rows], label="cross-entropy")
    ax[0, 0].semilogy(margins, [r["|dMSE/dz_true|"] for r in rows], label="MSE on softmax")
    ax[0, 0].set(title="gradient on the true logit", xlabel="wrong class's logit lead")
    ax[0, 0].legend()
    for name, b in best.items():
        steps = np.arange(1, len(b["curve"]) + 1) * cfg.eval_every
        ax[0, 1].plot(steps, b["curve"], label=f"{name} (lr {b['lr']})")
    ax[0, 1].set(title="test accuracy", xlabel="step")
    ax[0, 1].legend()
    ctx.figure("mse_vs_ce", fig, "Gradients when wrong, and training curves.")
    mean, (lo, hi) = mean_ci(
        np.array(best["cross_entropy"]["accs"]) - np.array(best["mse_on_softmax"]["accs"])
    )
    ctx.claim(
        "Each at its best learning rate, cross-entropy ends with higher test accuracy than MSE "
        "on softmax outputs at the same step budget",
        value=mean,
        holds=lo > 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail="value: accuracy difference CE - MSE, paired by seed",
    )


# ------------------------------------------------------------------------------------
# focal loss on imbalanced data
# ------------------------------------------------------------------------------------


def imbalanced_binary(data, positive: int, ratio: int, rng: np.random.Generator):
    """One class as positives, the rest as negatives, positives thinned to 1:`ratio` in
    training (the test set keeps its natural share, about 1:9)."""
    y = (data.y_train == positive).numpy()
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    keep = rng.choice(pos, max(1, len(neg) // ratio), replace=False)
    idx = np.concatenate([keep, neg])
    x_tr, y_tr = data.x_train[idx], torch.from_numpy(y[idx].astype(np.float32))
    y_te = (data.y_test == positive).float()
    return x_tr, y_tr, data.x_test, y_te


@lab("losses", insights=["focal loss"])
def focal_imbalanced(ctx: Lab) -> None:
    """Focal loss on a 1:50 minority class: how much of the loss the easy examples carry,
    and what that does to minority recall, AP and balanced accuracy.

    Lin et al. (2017) found that under cross-entropy the many easy negatives dominate the
    total loss of a dense detector; (1 - p_t)^gamma shrinks their share. Compared here with
    cross-entropy and with class-weighted cross-entropy (positive weight = the imbalance).
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        positive=3,
        ratio=50,
        gammas=[0.5, 1.0, 2.0, 5.0],
        hidden=[128],
        steps=(300, 2000, 8000),
        batch=256,
        lr=1e-3,  # Adam: invariant to each loss's overall scale, so methods compare fairly
        seeds=(1, 3, 5),
        easy_above=0.9,
    )
    data = image_classification(cfg.dataset, ctx.rng)
    ctx.dataset({**data.record, "task": f"class {cfg.positive} vs rest, 1:{cfg.ratio} in training"})
    methods: dict[str, object] = {"ce": lambda z, y: bce_with_logits(z, y)}
    methods["weighted_ce"] = lambda z, y: bce_with_logits(z, y, pos_weight=float(cfg.ratio))
    for g in cfg.gammas:
        methods[f"focal_{g:g}"] = lambda z, y, g=g: focal_binary(z, y, gamma=g)
    metrics: dict[str, list[dict]] = {m: [] for m in methods}
    share_rows = []
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        rng = np.random.default_rng(ctx.seed + s)
        x_tr, y_tr, x_te, y_te = imbalanced_binary(data, cfg.positive, cfg.ratio, rng)
        for name, loss_fn in methods.items():
            torch.manual_seed(ctx.seed + s)
            model = make_mlp([x_tr.shape[1], *cfg.hidden, 1])
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            for idx in batches_for_steps(len(x_tr), cfg.batch, cfg.steps, np.random.default_rng(s)):
                opt.zero_grad()
                loss_fn(model(x_tr[idx])[:, 0], y_tr[idx]).backward()
                opt.step()
            with torch.no_grad():
                z_te = model(x_te)[:, 0]
                z_tr = model(x_tr)[:, 0]
            if not torch.isfinite(z_te).all():
                raise RuntimeError(f"{name} diverged (seed {s}); lower lr")
            score = torch.sigmoid(z_te).numpy()
            pred = score > 0.5
            metrics[name].append(
                {
                    "ap": average_precision_score(y_te.numpy(), score),
                    "recall": recall_score(y_te.numpy(), pred, zero_division=0),
                    "balanced_acc": balanced_accuracy_score(y_te.numpy(), pred),
                }
            )
            if name == "ce":
                # share of the total training loss carried by easy examples (p_t > easy_above),
                # for the same trained model under CE and under each focal gamma
                p_t = torch.where(y_tr > 0.5, log_sigmoid(z_tr), log_sigmoid(-z_tr)).exp()
                easy = p_t > cfg.easy_above
                for g in [0.0, *cfg.gammas]:
                    per = -((1 - p_t) ** g) * torch.log(p_t.clamp_min(1e-12))
                    share_rows.append(
                        {
                            "seed": s,
                            "gamma": g,
                            "easy_share_of_examples": easy.float().mean().item(),
                            "easy_share_of_loss": (per[easy].sum() / per.sum()).item(),
                        }
                    )
        ctx.log(
            step=s,
            ap_ce=metrics["ce"][-1]["ap"],
            ap_focal2=metrics.get("focal_2", [{}])[-1].get("ap"),
        )
    rows = []
    for name, ms in metrics.items():
        row = {"method": name}
        for key in ("ap", "recall", "balanced_acc"):
            vals = [m[key] for m in ms]
            row[key] = float(np.mean(vals))
            lo, hi = bootstrap_ci(vals)
            row[f"{key}_ci"] = f"[{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    ctx.table("minority_metrics", rows, note=f"test set, {cfg.seeds} seeds, threshold 0.5")
    share = {
        g: np.mean([r["easy_share_of_loss"] for r in share_rows if r["gamma"] == g])
        for g in [0.0, *cfg.gammas]
    }
    ctx.table(
        "easy_examples_share_of_loss",
        [{"gamma": g, "easy_share_of_loss": float(v)} for g, v in share.items()],
        note=f"one CE-trained model per seed; easy means p_t > {cfg.easy_above}; gamma 0 is CE",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    ax[0, 0].plot(list(share), list(share.values()), "o-")
    ax[0, 0].set(title="easy examples' share of the loss", xlabel="gamma (0 = CE)", ylabel="share")
    names = [r["method"] for r in rows]
    ax[0, 1].bar(np.arange(len(rows)) - 0.2, [r["ap"] for r in rows], 0.4, label="AP")
    ax[0, 1].bar(
        np.arange(len(rows)) + 0.2, [r["balanced_acc"] for r in rows], 0.4, label="balanced acc"
    )
    ax[0, 1].set_xticks(np.arange(len(rows)), names, rotation=30, fontsize=7)
    ax[0, 1].set(ylim=(0.5, 1.0), title=f"minority class {cfg.positive}, 1:{cfg.ratio}")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("focal", fig, "Loss share of easy examples, and minority-class metrics.")

    ctx.claim(
        f"Under cross-entropy the easy examples (p_t > {cfg.easy_above}) carry most of the total "
        "loss, and focal gamma = 2 cuts their share by at least half",
        value=float(share[2.0] / share[0.0]),
        holds=share[0.0] > 0.5 and share[2.0] <= 0.5 * share[0.0],
        detail=f"share under CE {share[0.0]:.3f}, under gamma 2 {share[2.0]:.3f}",
    )
    for key, label in (("ap", "average precision"), ("balanced_acc", "balanced accuracy")):
        d = np.array([m[key] for m in metrics["focal_2"]]) - np.array(
            [m[key] for m in metrics["ce"]]
        )
        mean, (lo, hi) = mean_ci(d)
        ctx.claim(
            f"Focal loss (gamma 2) improves minority-class {label} over cross-entropy",
            value=mean,
            holds=lo > 0,
            interval=(lo, hi),
            seeds=cfg.seeds,
            detail="value: mean paired difference focal - CE",
        )
    d = np.array([m["balanced_acc"] for m in metrics["weighted_ce"]]) - np.array(
        [m["balanced_acc"] for m in metrics["ce"]]
    )
    mean, (lo, hi) = mean_ci(d)
    ctx.claim(
        "Class-weighted cross-entropy improves balanced accuracy over plain cross-entropy",
        value=mean,
        holds=lo > 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
    )


# ------------------------------------------------------------------------------------
# contrastive objective
# ------------------------------------------------------------------------------------


def knn_accuracy(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray
) -> float:
    knn = KNeighborsClassifier(n_neighbors=5).fit(train, y_train)
    return float(knn.score(test, y_test))


@lab("losses", insights=["contrastive learning"])
def contrastive_embedding(ctx: Lab) -> None:
    """An embedding trained by comparing examples: triplet loss and InfoNCE (NT-Xent).

    Neither loss sees a class score: triplet loss pulls an anchor toward a same-class
    example and pushes it from another class by a margin (Schroff et al. 2015); NT-Xent
    treats two same-class examples as a positive pair against all others in the batch
    (the supervised form of Chen et al. 2020). Quality is kNN accuracy on held-out data.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        n_train=(None, 10000, None),
        dim=16,
        hidden=[256],
        steps=(200, 1500, 6000),
        batch=128,
        lr=1e-3,
        margin=0.5,
        temperature=0.2,
        seeds=(1, 2, 3),
        n_eval=2000,
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    x, y = data.x_train, data.y_train
    by_class = [torch.nonzero(y == c)[:, 0] for c in range(data.n_classes)]
    x_te, y_te = data.x_test[: cfg.n_eval], data.y_test[: cfg.n_eval].numpy()
    x_ref, y_ref = x[: cfg.n_eval], y[: cfg.n_eval].numpy()

    def sample_same(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        out = torch.empty_like(idx)
        for c, pool in enumerate(by_class):
            m = y[idx] == c
            out[m] = pool[torch.randint(0, len(pool), (int(m.sum()),), generator=gen)]
        return out

    def embed(model: torch.nn.Module, inp: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            e = model(inp)
        return F.normalize(e, dim=1).numpy()

    raw = knn_accuracy(x_ref.numpy(), y_ref, x_te.numpy(), y_te)
    results: dict[str, list[float]] = {"untrained": [], "triplet": [], "nt_xent": []}
    embeddings = {}
    for s in ctx.progress(range(cfg.seeds), desc="seeds"):
        gen = torch.Generator().manual_seed(ctx.seed + s)
        for method in results:
            torch.manual_seed(ctx.seed + s)
            model = make_mlp([x.shape[1], *cfg.hidden, cfg.dim])
            if method != "untrained":
                opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
                for _ in range(cfg.steps):
                    idx = torch.randint(0, len(x), (cfg.batch,), generator=gen)
                    pos = sample_same(idx, gen)
                    ea, ep = model(x[idx]), model(x[pos])
                    if method == "triplet":
                        shift = torch.randint(1, cfg.batch, (1,), generator=gen).item()
                        neg = torch.roll(idx, shift)  # another example of the batch ...
                        en = model(x[neg])
                        valid = y[neg] != y[idx]  # ... counted only if of another class
                        loss = triplet(
                            F.normalize(ea[valid], dim=1),
                            F.normalize(ep[valid], dim=1),
                            F.normalize(en[valid], dim=1),
                            cfg.margin,
                        )
                    else:
                        loss = nt_xent(ea, ep, cfg.temperature)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            acc = knn_accuracy(embed(model, x_ref), y_ref, embed(model, x_te), y_te)
            results[method].append(acc)
            if s == 0:
                embeddings[method] = embed(model, x_te)
        ctx.log(step=s, **{m: v[-1] for m, v in results.items()})
    rows = [{"embedding": "raw pixels", "knn_acc": raw, "ci_low": raw, "ci_high": raw}]
    for m, v in results.items():
        lo, hi = bootstrap_ci(v)
        rows.append({"embedding": m, "knn_acc": float(np.mean(v)), "ci_low": lo, "ci_high": hi})
    ctx.table(
        "knn_accuracy", rows, note=f"5-NN on {cfg.n_eval} held-out images, {cfg.dim}-d embedding"
    )
    fig, ax = new_figure(1, 3, size=(14, 4))
    for j, m in enumerate(results):
        p = PCA(2, random_state=0).fit_transform(embeddings[m])
        sc = ax[0, j].scatter(p[:, 0], p[:, 1], c=y_te, s=3, cmap="tab10")
        ax[0, j].set(title=f"{m}: 5-NN acc {np.mean(results[m]):.3f}")
    fig.colorbar(sc, ax=ax[0, 2], label="class")
    ctx.figure("embeddings", fig, "2-D PCA of held-out embeddings, coloured by class.")
    for m in ("triplet", "nt_xent"):
        d = np.array(results[m]) - np.array(results["untrained"])
        mean, (lo, hi) = mean_ci(d)
        ctx.claim(
            f"Training with {m} raises held-out 5-NN accuracy over the same untrained network by "
            "at least 5 points",
            value=mean,
            holds=lo >= 0.05,
            interval=(lo, hi),
            seeds=cfg.seeds,
        )
    best = max(np.mean(results["triplet"]), np.mean(results["nt_xent"]))
    ctx.claim(
        f"The best contrastive embedding ({cfg.dim}-d) beats 5-NN on raw pixels",
        value=float(best - raw),
        holds=best > raw,
        seeds=cfg.seeds,
        detail=f"raw-pixel 5-NN accuracy {raw:.4f}",
    )


# ------------------------------------------------------------------------------------
# curriculum learning
# ------------------------------------------------------------------------------------


@lab("losses", insights=["curriculum learning"])
def curriculum(ctx: Lab) -> None:
    """Easy-to-hard vs random vs hard-to-easy ordering, with clean and noisy labels, at a
    small and a large step budget.

    Difficulty of an example is the loss of a scoring model trained on a separate split
    (transfer scoring, Hacohen & Weinshall 2019). The curriculum samples batches from the
    easiest fraction of the data, growing linearly from `start` to all of it over the first
    half of the budget; anti-curriculum does the same from the hardest end (Bengio et al.
    2009 for the idea). With noisy labels the mislabelled examples score as hard, so an
    easy-first curriculum sees them late.
    """
    cfg = ctx.config(
        dataset=("digits", "mnist", "mnist"),
        n_train=(None, 20000, None),
        hidden=[128],
        budgets=([30, 150], [100, 2000], [300, 8000]),
        batch=64,
        lr=0.05,
        noise=0.3,
        start=0.2,
        seeds=(1, 3, 5),
    )
    data = image_classification(cfg.dataset, ctx.rng, n_train=cfg.n_train)
    ctx.dataset(data.record)
    n = len(data.x_train)
    half = n // 2
    # scoring model trained on the second half; the curriculum trains on the first half
    torch.manual_seed(ctx.seed)
    scorer = make_mlp([data.x_train.shape[1], *cfg.hidden, data.n_classes])
    opt = torch.optim.SGD(scorer.parameters(), lr=cfg.lr, momentum=0.9)
    for idx in batches_for_steps(
        n - half, cfg.batch, max(cfg.budgets), np.random.default_rng(ctx.seed)
    ):
        opt.zero_grad()
        F.cross_entropy(scorer(data.x_train[half:][idx]), data.y_train[half:][idx]).backward()
        opt.step()
    x, y_clean = data.x_train[:half], data.y_train[:half]
    rows, acc = [], {}
    for noisy in ctx.progress([False, True], desc="labels"):
        rng = np.random.default_rng(ctx.seed + 7)
        y = y_clean.clone()
        if noisy:
            flip = torch.from_numpy(rng.random(half) < cfg.noise)
            y[flip] = torch.from_numpy(rng.integers(0, data.n_classes, int(flip.sum())))
        with torch.no_grad():
            difficulty = F.cross_entropy(scorer(x), y, reduction="none")
        order_easy = torch.argsort(difficulty)
        orders = {"curriculum": order_easy, "anti": order_easy.flip(0), "random": None}
        for budget in cfg.budgets:
            for name, order in orders.items():
                accs = []
                for s in range(cfg.seeds):
                    torch.manual_seed(ctx.seed + s)
                    model = make_mlp([x.shape[1], *cfg.hidden, data.n_classes])
                    o = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
                    gen = torch.Generator().manual_seed(ctx.seed + s)
                    for t in range(budget):
                        if order is None:
                            idx = torch.randint(0, half, (cfg.batch,), generator=gen)
                        else:  # linear pacing: the available easiest share grows to 1 at budget/2
                            frac = min(1.0, cfg.start + (1 - cfg.start) * t / max(1, budget // 2))
                            pool = max(cfg.batch, int(frac * half))
                            idx = order[torch.randint(0, pool, (cfg.batch,), generator=gen)]
                        o.zero_grad()
                        F.cross_entropy(model(x[idx]), y[idx]).backward()
                        o.step()
                    accs.append(accuracy(model, data.x_test, data.y_test))
                acc[(noisy, budget, name)] = np.array(accs)
                rows.append(
                    {
                        "labels": "noisy" if noisy else "clean",
                        "budget": budget,
                        "ordering": name,
                        "test_acc": float(np.mean(accs)),
                    }
                )
                ctx.log(step=budget, noisy=noisy, ordering=name, test_acc=float(np.mean(accs)))
    ctx.table(
        "curriculum",
        rows,
        note=f"{cfg.seeds} seeds; noisy = {cfg.noise:.0%} labels resampled at random",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for j, noisy in enumerate((False, True)):
        for name in ("curriculum", "random", "anti"):
            ax[0, j].plot(
                cfg.budgets, [acc[(noisy, b, name)].mean() for b in cfg.budgets], "o-", label=name
            )
        ax[0, j].set(
            title=f"{'noisy' if noisy else 'clean'} labels",
            xlabel="steps",
            ylabel="test accuracy",
            xscale="log",
        )
        ax[0, j].legend()
    ctx.figure("curriculum", fig, "Test accuracy by ordering, label noise and budget.")
    for noisy in (False, True):
        for budget in cfg.budgets:
            d = acc[(noisy, budget, "curriculum")] - acc[(noisy, budget, "random")]
            mean, (lo, hi) = mean_ci(d)
            ctx.claim(
                f"With {'noisy' if noisy else 'clean'} labels and {budget} steps, easy-to-hard "
                "ordering beats random ordering",
                value=mean,
                holds=lo > 0,
                interval=(lo, hi),
                seeds=cfg.seeds,
                detail="value: mean test-accuracy difference curriculum - random, paired by seed",
            )
