"""Curriculum learning: easy-to-hard vs random vs hard-to-easy ordering of the examples."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.core import Lab, fit, lab, make_ensemble, new_figure, per_scale
from mlatlas.core.ensemble import (
    ensemble_cross_entropy,
    member_accuracy,
    member_batches,
    member_outputs,
)
from mlatlas.core.train import batches_for_steps, make_mlp
from mlatlas.foundations.losses.train import load_images

ORDERINGS = ("curriculum", "random", "anti")


def paced_batches(
    orders: Sequence[torch.Tensor | None],
    gens: Sequence[torch.Generator],
    n: int,
    batch: int,
    budget: int,
    start: float,
) -> Iterator[torch.Tensor]:
    """(R, batch) indices for `budget` steps. Member r samples uniformly from the first
    `frac * n` examples of orders[r] (None: from all n), with frac growing linearly from
    `start` to 1 over the first half of the budget (linear pacing)."""
    for t in range(budget):
        frac = min(1.0, start + (1 - start) * t / max(1, budget // 2))
        pool = max(batch, int(frac * n))
        rows = []
        for order, g in zip(orders, gens, strict=True):
            if order is None:
                rows.append(torch.randint(0, n, (batch,), generator=g))
            else:
                rows.append(order[torch.randint(0, pool, (batch,), generator=g)])
        yield torch.stack(rows)


def scorer_rank_agreement(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Mean Spearman correlation, over pairs of seeds, of the per-example losses their scorers
    give (scores: (S, N, C) logits, y: (N,) labels); 1 if every seed ranks alike, nan for S < 2."""
    losses = torch.stack([F.cross_entropy(z, y, reduction="none") for z in scores])
    ranks = losses.argsort(1).argsort(1).double()
    ranks = (ranks - ranks.mean(1, keepdim=True)) / ranks.std(1, keepdim=True)
    corr = ranks @ ranks.T / (ranks.shape[1] - 1)
    pairs = torch.triu_indices(len(scores), len(scores), 1)
    return float(corr[pairs[0], pairs[1]].mean()) if len(scores) > 1 else float("nan")


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

    Per seed: its own scoring model (its own init and minibatch stream, trained on the second
    half of the training split; the seeds' scorers are one batched ensemble), so each seed's
    difficulty order, the treatment, is its own and the comparison is replicated over
    orderings as well as over the training runs; its own label noise, init and sampling
    stream, shared by the three orderings (one batched ensemble per label condition and
    budget). A seed whose scorer diverged has no difficulty order: its curriculum and
    anti-curriculum runs are failures (NaN), as is any diverged run of either arm: the core
    then leaves the claim inconclusive rather than score a failure at chance accuracy, which
    would favour the claim when the random-ordering run is the one that failed.
    Four paired comparisons, curriculum vs random; the core Holm-corrects them. The test split
    chooses nothing: the scorer, the pacing and the step sizes are fixed in advance.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(None, 20000, None),
        hidden=[128],
        budgets=per_scale([30, 150], [100, 2000], [300, 8000]),
        batch=64,
        lr=0.05,
        noise=0.3,
        start=0.2,
        seeds=per_scale(2, 5, 10),
        scorer_steps=per_scale(150, 2000, 8000),
    )
    claims = {
        (noisy, budget): ctx.claim(
            f"With {'noisy' if noisy else 'clean'} labels and {budget} steps, easy-to-hard "
            "ordering beats random ordering",
            quantity="test accuracy; a = curriculum, b = random ordering",
            direction=">",
            margin=0.0,
            paired=True,
        )
        for noisy in (False, True)
        for budget in cfg.budgets
    }
    data = load_images(cfg.dataset, cfg.n_train)
    ctx.dataset(data.record)
    n = len(data.x_train)
    half = n // 2
    sizes = [data.x_train.shape[1], *cfg.hidden, data.n_classes]
    reps = list(ctx.replicates(cfg.seeds))
    S = len(reps)
    # one scoring model per seed, trained on the second half; the curriculum trains on the first
    x2, y2 = data.x_train[half:], data.y_train[half:]
    scorers = make_ensemble(
        lambda _: make_mlp(sizes), S, lambda r: reps[r].seed_torch("scorer init")
    )
    scored = fit(
        scorers,
        torch.optim.SGD(scorers.parameters(), lr=cfg.lr, momentum=0.9),
        ensemble_cross_entropy(x2, y2),
        member_batches(
            [
                batches_for_steps(len(x2), cfg.batch, cfg.scorer_steps, rep.rng("scorer batches"))
                for rep in reps
            ]
        ),
        cfg.scorer_steps,
        ctx=ctx,
        desc="scorers",
    )
    x, y_clean = data.x_train[:half], data.y_train[:half]
    scores = member_outputs(scorers, x)  # (S, half, C): seed s's scorer on the first half
    no_order = torch.as_tensor(scored.diverged) | ~torch.isfinite(scores).flatten(1).all(1)
    ctx.metric("scorers_diverged", int(no_order.sum()))
    ctx.metric("scorer_rank_agreement", scorer_rank_agreement(scores, y_clean))
    rows, acc = [], {}
    for noisy in (False, True):
        labels, easy_first = [], []
        for s, rep in enumerate(reps):  # each seed its own scorer and label noise
            y = y_clean.clone()
            if noisy:
                rng = rep.rng("label noise")
                flip = torch.as_tensor(rng.random(half) < cfg.noise)
                y[flip] = torch.as_tensor(rng.integers(0, data.n_classes, int(flip.sum())))
            difficulty = F.cross_entropy(scores[s], y, reduction="none")
            labels.append(y)
            easy_first.append(torch.argsort(difficulty))
        y_members = torch.stack(labels * len(ORDERINGS))  # (R, half), ordering-major
        orders = [*easy_first, *([None] * S), *[o.flip(0) for o in easy_first]]
        for budget in cfg.budgets:
            member_reps = [rep for _ in ORDERINGS for rep in reps]
            ens = make_ensemble(
                lambda _: make_mlp(sizes),
                len(member_reps),
                lambda r, mr=member_reps: mr[r].seed_torch("init"),  # one init per seed
            )
            gens = [rep.generator("batches", noisy, budget) for rep in member_reps]

            def loss_fn(model, idx, y_members=y_members):
                z = model(x[idx], per_member=True)  # (R, B, C)
                yb = torch.gather(y_members, 1, idx)
                return F.cross_entropy(z.transpose(1, 2), yb, reduction="none").mean(1)

            res = fit(
                ens,
                torch.optim.SGD(ens.parameters(), lr=cfg.lr, momentum=0.9),
                loss_fn,
                paced_batches(orders, gens, half, cfg.batch, budget, cfg.start),
                budget,
                ctx=ctx,
                desc=f"{'noisy' if noisy else 'clean'} {budget}",
            )
            test = member_accuracy(ens, data.x_test, data.y_test)
            test[res.diverged] = np.nan
            for k in (0, 2):  # without its scorer a seed has no easy-first order
                test[k * S : (k + 1) * S][no_order.numpy()] = np.nan
            for k, name in enumerate(ORDERINGS):
                acc[(noisy, budget, name)] = test[k * S : (k + 1) * S]
                rows.append(
                    {
                        "labels": "noisy" if noisy else "clean",
                        "budget": budget,
                        "ordering": name,
                        "test_acc_mean": float(np.nanmean(test[k * S : (k + 1) * S])),
                        "diverged_seeds": int(res.diverged[k * S : (k + 1) * S].sum()),
                    }
                )
            for s, rep in enumerate(reps):
                claims[(noisy, budget)].add(
                    rep.id, acc[(noisy, budget, "curriculum")][s], acc[(noisy, budget, "random")][s]
                )
            ctx.log(
                step=budget,
                noisy=noisy,
                **{o: rows[-3 + k]["test_acc_mean"] for k, o in enumerate(ORDERINGS)},
            )
    ctx.table(
        "curriculum",
        rows,
        note=f"{S} seeds; noisy = {cfg.noise:.0%} of labels resampled at random, per seed",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for j, noisy in enumerate((False, True)):
        for name in ORDERINGS:
            means = [np.nanmean(acc[(noisy, b, name)]) for b in cfg.budgets]
            ax[0, j].plot(cfg.budgets, means, "o-", label=name)
        ax[0, j].set(
            title=f"{'noisy' if noisy else 'clean'} labels",
            xlabel="steps",
            ylabel="test accuracy (mean over seeds)",
            xscale="log",
        )
        ax[0, j].legend()
    ctx.figure("curriculum", fig, "Test accuracy by ordering, label noise and budget.")
