"""Focal loss on a 1:50 minority class: loss share of easy examples, and minority metrics."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, balanced_accuracy_score, recall_score
from torch.func import vmap

from mlatlas.core import Lab, fit, lab, make_ensemble, new_figure, per_scale
from mlatlas.core.ensemble import member_batches, member_outputs
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import batches_for_steps, make_mlp
from mlatlas.foundations.losses.functions import bce_with_logits, focal_binary, log_sigmoid
from mlatlas.foundations.losses.train import load_images


def imbalanced_indices(y: np.ndarray, ratio: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of every negative and of a random 1/`ratio` as many positives (y boolean)."""
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    keep = rng.choice(pos, max(1, len(neg) // ratio), replace=False)
    return np.concatenate([keep, neg])


def easy_shares(z: torch.Tensor, y: torch.Tensor, gammas, easy_above: float):
    """Share of the examples with p_t > easy_above, and their share of the total focal loss
    -(1 - p_t)^g log p_t for each g in `gammas` (g = 0 is cross-entropy)."""
    logp_t = torch.where(y > 0.5, log_sigmoid(z), log_sigmoid(-z)).double()
    p_t = logp_t.exp()
    easy = p_t > easy_above
    shares = {}
    for g in gammas:
        per = -((1 - p_t) ** g) * logp_t
        shares[g] = (per[easy].sum() / per.sum()).item()
    return easy.double().mean().item(), shares


@lab("losses", insights=["focal loss"])
def focal_imbalanced(ctx: Lab) -> None:
    """Focal loss on a 1:50 minority class: how much of the loss the easy examples carry,
    and what that does to minority recall, AP and balanced accuracy.

    Lin et al. (2017) found that under cross-entropy the many easy negatives dominate the
    total loss of a dense detector; (1 - p_t)^gamma shrinks their share. Compared here with
    cross-entropy and with class-weighted cross-entropy (positive weight = the imbalance).

    Each seed draws its own 1:50 training set (all negatives, a random subset of positives),
    init and batch order; every method of a seed shares them (one batched ensemble, Adam,
    whose scale invariance lets losses of different size compare at one lr; no lr is tuned).
    The easy examples' share of the loss is measured per seed on the CE-trained model, with
    every gamma's weighting applied to that same model. An earlier version stated "easy
    examples carry most of the CE loss and gamma 2 cuts their share by half" as one claim
    without an interval; these are now two per-seed experiments.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=None,
        positive=3,
        ratio=50,
        gammas=[0.5, 1.0, 2.0, 5.0],
        hidden=[128],
        steps=per_scale(200, 2000, 8000),
        batch=per_scale(128, 256, 256),
        lr=1e-3,
        seeds=per_scale(2, 5, 10),
        easy_above=0.9,
    )
    e = cfg.easy_above
    most = ctx.claim(
        f"Under cross-entropy the easy examples (p_t > {e}) carry most of the total training loss",
        quantity="easy examples' share of the CE training loss of the CE-trained model",
        direction=">",
        margin=0.5,
    )
    cut = ctx.claim(
        "Focal weighting with gamma = 2 cuts the easy examples' share of the loss by at least half",
        quantity="easy share of the loss; a = gamma-2 focal, b = CE, same CE-trained model",
        direction="<",
        margin=0.5,
        paired=True,
        log=True,
    )
    data = load_images(cfg.dataset, cfg.n_train)
    y_test = (data.y_test == cfg.positive).cpu().numpy()
    prevalence = float(y_test.mean())
    better = {
        ("ap", "focal_2"): ctx.claim(
            "Focal loss (gamma 2) improves minority-class average precision over cross-entropy",
            quantity="test AP; a = focal gamma 2, b = CE (diverged: AP of chance, the prevalence)",
            direction=">",
            margin=0.0,
            paired=True,
            on_failure=prevalence,
        )
    }
    for key, method, label in (
        ("balanced_acc", "focal_2", "Focal loss (gamma 2)"),
        ("balanced_acc", "weighted_ce", "Class-weighted cross-entropy"),
    ):
        better[(key, method)] = ctx.claim(
            f"{label} improves minority-class balanced accuracy over cross-entropy",
            quantity=f"test balanced accuracy at threshold 0.5; a = {method}, b = CE "
            "(diverged: 0.5)",
            direction=">",
            margin=0.0,
            paired=True,
            on_failure=0.5,
        )
    task = f"class {cfg.positive} vs rest, 1:{cfg.ratio} in training"
    ctx.dataset({**data.record, "task": task})

    methods: dict[str, object] = {"ce": bce_with_logits}
    methods["weighted_ce"] = lambda z, y: bce_with_logits(z, y, pos_weight=float(cfg.ratio))
    for g in cfg.gammas:
        methods[f"focal_{g:g}"] = lambda z, y, g=g: focal_binary(z, y, gamma=g)
    names = list(methods)
    y_all = (data.y_train == cfg.positive).cpu().numpy()
    reps: list[Replicate] = list(ctx.replicates(cfg.seeds))
    train_idx = torch.as_tensor(
        np.stack([imbalanced_indices(y_all, cfg.ratio, rep.rng("subsample")) for rep in reps])
    )  # (S, n): every seed keeps all negatives, so the sets have one size
    S, M = len(reps), len(names)
    member_rep = [s for _ in names for s in range(S)]  # member = (method, seed), method-major
    ens = make_ensemble(
        lambda _: make_mlp([data.x_train.shape[1], *cfg.hidden, 1]),
        M * S,
        lambda r: reps[member_rep[r]].seed_torch("init"),
    )
    member_idx = train_idx[torch.tensor(member_rep)]  # (R, n): each member's training set
    y_float = torch.as_tensor(y_all.astype(np.float32))
    per_method = [vmap(methods[n]) for n in names]

    def loss_fn(model, local):
        idx = torch.gather(member_idx, 1, local)  # (R, B) indices into x_train
        z = model(data.x_train[idx], per_member=True)[..., 0]
        y = y_float[idx]
        return torch.cat(
            [f(z[m * S : (m + 1) * S], y[m * S : (m + 1) * S]) for m, f in enumerate(per_method)]
        )

    opt = torch.optim.Adam(ens.parameters(), lr=cfg.lr)
    batches = member_batches(
        [
            batches_for_steps(train_idx.shape[1], cfg.batch, cfg.steps, reps[s].rng("batches"))
            for s in member_rep
        ]
    )
    res = fit(
        ens,
        opt,
        loss_fn,
        batches,
        cfg.steps,
        ctx=ctx,
        desc="train",
        log_every=100,
    )
    z_test = member_outputs(ens, data.x_test)[..., 0]

    metrics = {n: {"ap": [], "recall": [], "balanced_acc": []} for n in names}
    share_rows = []
    for m, name in enumerate(names):
        for s in range(S):
            z = z_test[m * S + s]
            if res.diverged[m * S + s] or not torch.isfinite(z).all():
                vals = {"ap": np.nan, "recall": np.nan, "balanced_acc": np.nan}
            else:
                score = torch.sigmoid(z).cpu().numpy()
                pred = score > 0.5
                vals = {
                    "ap": average_precision_score(y_test, score),
                    "recall": recall_score(y_test, pred, zero_division=0),
                    "balanced_acc": balanced_accuracy_score(y_test, pred),
                }
            for k, v in vals.items():
                metrics[name][k].append(v)
    for (key, method), c in better.items():
        for s, rep in enumerate(reps):
            c.add(rep.id, metrics[method][key][s], metrics["ce"][key][s])

    # easy examples' share of the training loss, on each seed's CE-trained model
    gammas = [0.0, *cfg.gammas]
    for s, rep in enumerate(reps):
        idx = train_idx[s]
        with torch.no_grad():
            z_tr = ens.member(names.index("ce") * S + s)(data.x_train[idx])[:, 0]
        frac, shares = easy_shares(z_tr, y_float[idx], gammas, cfg.easy_above)
        most.add(rep.id, shares[0.0])
        cut.add(rep.id, shares[2.0], shares[0.0])
        share_rows += [
            {"seed": rep.id, "gamma": g, "easy_share_of_examples": frac, "easy_share_of_loss": v}
            for g, v in shares.items()
        ]

    rows = []
    for name in names:
        row = {"method": name, "diverged_seeds": int(np.isnan(metrics[name]["ap"]).sum())}
        for key in ("ap", "recall", "balanced_acc"):
            vals = np.array(metrics[name][key])
            row[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else None
            row[f"{key}_min"] = float(np.nanmin(vals)) if np.isfinite(vals).any() else None
        rows.append(row)
    ctx.table("minority_metrics", rows, note=f"test set, mean over {S} seeds, threshold 0.5")
    share = {
        g: float(np.mean([r["easy_share_of_loss"] for r in share_rows if r["gamma"] == g]))
        for g in gammas
    }
    ctx.table(
        "easy_examples_share_of_loss",
        share_rows,
        note=f"CE-trained model of each seed; easy means p_t > {e}; gamma 0 is CE",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for rep in reps:
        pts = [r["easy_share_of_loss"] for r in share_rows if r["seed"] == rep.id]
        ax[0, 0].plot(gammas, pts, "o-", color="0.6", lw=0.8)
    ax[0, 0].plot(gammas, list(share.values()), "o-", color="k", label="mean over seeds")
    ax[0, 0].set(title="easy examples' share of the loss", xlabel="gamma (0 = CE)", ylabel="share")
    ax[0, 0].legend(fontsize=7)
    x = np.arange(len(rows))
    ax[0, 1].bar(x - 0.2, [r["ap"] or 0 for r in rows], 0.4, label="AP")
    ax[0, 1].bar(x + 0.2, [r["balanced_acc"] or 0 for r in rows], 0.4, label="balanced acc")
    ax[0, 1].set_xticks(x, names, rotation=30, fontsize=7)
    ax[0, 1].set(ylim=(0.5, 1.0), title=f"minority class {cfg.positive}, 1:{cfg.ratio}")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("focal", fig, "Loss share of easy examples, and minority-class metrics.")
