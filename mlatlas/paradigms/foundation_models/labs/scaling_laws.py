"""Lab: loss against model size and tokens for tiny character GPTs, fitted with scaling laws."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core import Ensemble, Lab, fit, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import char_corpus
from mlatlas.core.ensemble import member_batches
from mlatlas.paradigms.foundation_models.scaling import (
    CHINCHILLA,
    KAPLAN_ALPHA_N,
    fit_chinchilla,
    fit_power_law,
    non_embedding_params,
    profile_interval_alpha,
)


def _slope(n: np.ndarray, loss: np.ndarray) -> float:
    """Least-squares slope of loss on log10 N (nats per decade of parameters)."""
    return float(np.polyfit(np.log10(n), loss, 1)[0])


@lab("foundation_models", insights=["Scale effects"])
def scaling_laws(ctx: Lab) -> None:
    """Scaling laws in miniature: loss against parameters N and tokens D for tiny GPTs.

    Six widths of a 2-layer character GPT (topic 7) train on Tiny Shakespeare for the same
    number of tokens, five seeds of each as one batched ensemble; the seeds of every width
    share their batch streams. The validation loss (nats per character, fixed windows of the
    held-out tail) is measured at eight points along training, which gives the (N, D) grid:
    the learning rate is constant after a short warmup, so an intermediate point is a run
    stopped early, not one annealed for that D (Hoffmann et al. 2022 show the difference
    matters; the grid here is the cheap, Kaplan et al. 2020-style version). The learning rate
    is fixed beforehand for every width, not tuned.

    Fitted: $L(N) = aN^{-\\alpha} + c$ on every seed's final loss, with a profile interval
    for $\\alpha$, and $L(N, D) = E + A/N^\\alpha + B/D^\\beta$ on the seed-mean grid, whose
    compute-optimal split of $C = 6ND$ gives the frontier. Kaplan et al. (2020) report
    $\\alpha_N = 0.076$ for models of $10^3$-$10^9$ parameters on word-piece tokens of
    WebText2 trained near convergence; this regime (10^4-10^5 parameters, characters, well
    under one epoch, a CPU-minute budget) is another one, and the two numbers are not
    expected to match. The claims: loss falls with N at fixed D (per-seed slope), returns per
    decade of N diminish, alpha's interval excludes 0, and at about equal compute a model
    about 8x smaller trained on 8x more tokens beats the largest one.
    """
    cfg = ctx.config(
        corpus=per_scale("guide", "tinyshakespeare", "tinyshakespeare"),
        widths=per_scale(
            [8, 16, 24, 32], [8, 16, 24, 32, 48, 64], [64, 96, 128, 192, 256, 384, 512]
        ),
        n_layer=per_scale(2, 2, 4),
        n_head=4,
        block=per_scale(32, 64, 256),
        batch=per_scale(8, 16, 64),
        steps=per_scale(40, 480, 20000),  # multiples of evals: the last evaluation ends training
        evals=8,
        eval_batches=per_scale(2, 8, 50),
        lr=per_scale(3e-3, 3e-3, 1e-3),
        seeds=per_scale(2, 5, 5),
    )
    corpus = char_corpus(cfg.corpus)
    ctx.dataset(corpus.record)
    tokens_per_step = cfg.batch * cfg.block
    falls = ctx.claim(
        "At a fixed token budget, validation loss falls with model size: the per-seed slope "
        "of loss on log10 N is negative",
        quantity="least-squares slope of final validation loss (nats/char) on log10 N, "
        "per seed, over all widths",
        direction="<",
        margin=0.0,
    )
    diminish = ctx.claim(
        "Returns diminish: the loss gained per decade of N over the smaller half of the "
        "widths exceeds that over the larger half",
        quantity="a = -slope over the smaller half of the widths, b = -slope over the larger "
        "half (nats per decade), per seed",
        direction=">",
        margin=0.0,
        paired=True,
    )
    iso = ctx.claim(
        "At about equal compute C = 6ND, a model about 8x smaller trained on all the tokens "
        "reaches lower loss than the largest model stopped early",
        quantity="a = loss of the width whose N is nearest N_max/8, at the full budget; b = "
        "loss of the largest width at its first evaluation with at least that compute",
        direction="<",
        margin=0.0,
        paired=True,
    )

    reps = list(ctx.replicates(cfg.seeds))
    every = max(1, cfg.steps // cfg.evals)
    warmup = max(1, cfg.steps // 20)
    val_gen = fixed_generator("scaling_laws", "val", cfg.block)
    val = [corpus.batch("val", cfg.batch, cfg.block, val_gen) for _ in range(cfg.eval_batches)]
    sizes, curves = [], []  # curves[w]: (evals, seeds) validation loss
    for width in cfg.widths:
        gcfg = GPTConfig(len(corpus.vocab), cfg.block, cfg.n_layer, cfg.n_head, width)
        models = []
        for rep in reps:
            rep.seed_torch("init", width)
            models.append(GPT(gcfg))
        sizes.append(non_embedding_params(models[0]))
        ens = Ensemble(models)

        def loss_fn(m: Ensemble, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            logits = m(b[0], per_member=True)
            ce = F.cross_entropy(logits.flatten(0, 2), b[1].flatten(), reduction="none")
            return ce.view(len(reps), -1).mean(1)

        @torch.no_grad()
        def evaluate(step: int, ens: Ensemble = ens) -> np.ndarray:
            total = torch.zeros(len(reps), dtype=torch.float64)
            for x, y in val:
                logits = ens(x)  # (R, B, T, V): every member on the same windows
                ce = F.cross_entropy(
                    logits.flatten(0, 2), y.repeat(len(reps), 1, 1).flatten(), reduction="none"
                )
                total += ce.view(len(reps), -1).mean(1).double()
            return (total / len(val)).cpu().numpy()

        gens = [rep.generator("batches") for rep in reps]
        res = fit(
            ens,
            torch.optim.AdamW(ens.parameters(), lr=cfg.lr, weight_decay=0.0),
            loss_fn,
            member_batches(gens, lambda g: corpus.batch("train", cfg.batch, cfg.block, g)),
            cfg.steps,
            ctx=ctx,
            desc=f"width {width}",
            schedule=lambda t: cfg.lr * min(1.0, (t + 1) / warmup),  # then constant
            evaluate=evaluate,
            eval_every=every,
        )
        curve = np.array([v for _, v in res.evals])
        curve[:, np.atleast_1d(res.diverged)] = np.nan  # a diverged seed has no loss
        curves.append(curve)
        ctx.log(step=None, width=width, N=sizes[-1], val_loss=float(np.nanmean(curve[-1])))
    steps_at = np.array([s for s, _ in res.evals])
    n = np.array(sizes, dtype=np.float64)
    d = steps_at * tokens_per_step
    grid = np.stack(curves)  # (widths, evals, seeds)
    final = grid[:, -1, :]  # (widths, seeds)

    half = len(n) // 2
    small = int(np.argmin(np.abs(np.log(n / (n[-1] / 8)))))
    c_small = 6 * n[small] * d[-1]
    j = int(np.flatnonzero(6 * n[-1] * d >= c_small)[0])
    for rep in reps:
        col = final[:, rep.id]
        falls.add(rep.id, _slope(n, col))
        diminish.add(rep.id, -_slope(n[:half], col[:half]), -_slope(n[half:], col[half:]))
        iso.add(rep.id, col[small], grid[-1, j, rep.id])

    ok = np.isfinite(final)
    n_all = np.repeat(n[:, None], final.shape[1], 1)[ok]
    law = fit_power_law(n_all, final[ok])
    lo, hi = profile_interval_alpha(n_all, final[ok])
    ctx.check(
        "The fitted exponent of L(N) = a N^-alpha + c is positive: the lower end of its 95% "
        "profile interval is above 0",
        lo,
        direction=">",
        bound=0.0,
        quantity=f"lower end of alpha's profile interval (alpha = {law.alpha:.3f})",
    )
    mean = np.nanmean(grid, axis=2)  # (widths, evals)
    nn_, dd = np.meshgrid(n, d, indexing="ij")
    chin = fit_chinchilla(nn_.ravel(), dd.ravel(), mean.ravel())
    for key, value in [("alpha", law.alpha), ("alpha_lo", lo), ("alpha_hi", hi)]:
        ctx.metric(key, value)
    ctx.metric("r2_L(N)", law.r2)
    ctx.metric("r2_L(N,D)", chin.r2)
    ctx.table(
        "sizes",
        [
            {
                "width": w,
                "N (non-embedding)": int(n[i]),
                "tokens D": int(d[-1]),
                "tokens per parameter": float(d[-1] / n[i]),
                "val loss (mean)": float(np.nanmean(final[i])),
                "val loss (sd)": float(np.nanstd(final[i], ddof=1)) if final.shape[1] > 1 else 0.0,
                "L(N) fit": float(law(n[i])),
            }
            for i, w in enumerate(cfg.widths)
        ],
        note=f"{cfg.steps} steps of {tokens_per_step} tokens, {cfg.seeds} seeds per width",
    )
    cols = ("law", "alpha", "alpha 95% profile", "beta", "E or c", "R^2", "max |residual|")
    rows = [
        ("L(N) = a N^-alpha + c", law.alpha, f"[{lo:.3f}, {hi:.3f}]", None, law.c, law.r2,
         float(np.abs(law.residuals).max())),
        ("L(N,D) = E + A/N^alpha + B/D^beta", chin.alpha, None, chin.beta, chin.e, chin.r2,
         float(np.abs(chin.residuals).max())),
        ("Kaplan et al. 2020, L(N), WebText2", KAPLAN_ALPHA_N, None, None, None, None, None),
        ("Hoffmann et al. 2022, L(N,D), MassiveText", CHINCHILLA["alpha"], None,
         CHINCHILLA["beta"], CHINCHILLA["E"], None, None),
    ]  # fmt: skip
    ctx.table(
        "fits",
        [dict(zip(cols, r, strict=True)) for r in rows],
        note="the published fits are for other data, tokens and sizes: shown for reference, "
        "not as a target",
    )
    budgets = np.geomspace(6 * n[0] * d[0], 6 * n[-1] * d[-1], 5)
    n_opt, d_opt = chin.compute_optimal(budgets)
    ctx.table(
        "frontier",
        [
            {
                "compute C (FLOPs)": float(c),
                "N_opt": float(a),
                "D_opt": float(b),
                "D_opt / N_opt": float(b / a),
                "fitted loss": float(chin(a, b)),
            }
            for c, a, b in zip(budgets, n_opt, d_opt, strict=True)
        ],
        note="compute-optimal split from the fitted L(N, D), Hoffmann et al. 2022 eq. 4",
    )

    fig, ax = new_figure(1, 2, size=(11, 4))
    grid_n = np.geomspace(n[0] / 1.5, n[-1] * 1.5, 100)
    for i in range(len(n)):
        ax[0, 0].plot([n[i]] * final.shape[1], final[i], "k.", alpha=0.4)
    ax[0, 0].plot(n, np.nanmean(final, 1), "o", color="C0", label="mean over seeds")
    ax[0, 0].plot(
        grid_n,
        law(grid_n),
        "-",
        color="C1",
        label=f"{law.a:.3g} N^-{law.alpha:.3f} + {law.c:.3f}  (R^2 {law.r2:.3f})",
    )
    ax[0, 0].set(
        xscale="log",
        yscale="log",
        xlabel="non-embedding parameters N",
        ylabel="validation loss (nats/char)",
        title=f"fixed D = {int(d[-1]):,} tokens",
    )
    ax[0, 0].legend(fontsize=8)
    for i in range(len(n)):
        ax[0, 1].plot(
            6 * n[i] * d, mean[i], "-o", ms=3, color=f"C{i % 10}", label=f"N = {int(n[i]):,}"
        )
    ax[0, 1].plot(budgets, chin(n_opt, d_opt), "k--", label="compute-optimal (fitted L(N,D))")
    ax[0, 1].set(
        xscale="log",
        yscale="log",
        xlabel="compute C = 6ND (FLOPs)",
        ylabel="validation loss (nats/char)",
        title="loss against compute",
    )
    ax[0, 1].legend(fontsize=7)
    ctx.figure(
        "scaling",
        fig,
        "Left: final validation loss against N at a fixed token budget (dots: seeds) with the "
        "fitted power law. Right: each width's loss along training against compute, and the "
        "frontier of the fitted L(N, D).",
    )
