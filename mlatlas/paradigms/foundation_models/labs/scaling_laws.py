"""Lab: loss against model size and tokens for tiny character GPTs, fitted with scaling laws."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core import Ensemble, Lab, fit, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import char_corpus
from mlatlas.core.ensemble import member_batches
from mlatlas.core.power import replicate_note
from mlatlas.paradigms.foundation_models.scaling import (
    CHINCHILLA,
    KAPLAN_ALPHA_N,
    decade_slope,
    equal_compute_pair,
    fit_chinchilla,
    fit_power_law,
    non_embedding_params,
    profile_interval_alpha,
    signed_exponent,
)


@lab("foundation_models", insights=["Scale effects"])
def scaling_laws(ctx: Lab) -> None:
    """Scaling laws in miniature: loss against parameters N and tokens D for tiny GPTs.

    Six widths of a 2-layer character GPT (topic 7) train on Tiny Shakespeare for the same
    number of tokens, six seeds of each as one batched ensemble; the seeds of every width
    share their batch streams. The validation loss (nats per character, fixed windows of the
    held-out tail) is measured at eight points along training, which gives the (N, D) grid:
    the learning rate (fixed beforehand, not tuned) is constant after a short warmup, so an
    intermediate point is a run stopped early, not one annealed for that D (Hoffmann et al.
    2022 show the difference matters; this is the cheap, Kaplan et al. 2020-style grid).

    Fitted: $L(N) = aN^{-\\alpha} + c$ on all final losses, and $L(N, D) = E + A/N^\\alpha +
    B/D^\\beta$ on the seed-mean grid, whose compute-optimal split of $C = 6ND$ gives the
    frontier; the profile interval of the pooled $\\alpha$ is shown, not tested (a seed's
    points share its batch stream, so they are not independent). Kaplan et al. (2020) report
    $\\alpha_N = 0.076$ for models of $10^3$-$10^9$ parameters on word-piece tokens of
    WebText2 trained near convergence; this regime (10^4-10^5 parameters, characters, well
    under one epoch, a CPU-minute budget) is another one, and the two numbers are not
    expected to match. The claims, over seeds: loss falls with N at fixed D (slope), returns
    per decade of N diminish, each seed's own fit has a positive exponent (signed by $a$:
    loss rising in N counts against it), and at equal compute (6ND matched up to a step) the
    width nearest $N_{max}/8$ on all the tokens beats the largest width stopped there (N
    6.9x, compute ratio 1.007 at default: in the claim and the iso_compute table).
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
        seeds=per_scale(2, 6, 6),
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
    decays = ctx.claim(
        "Per seed, the power law L(N) = a N^-alpha + c fitted to the final losses falls with "
        "N: its exponent alpha is positive",
        quantity="alpha of each seed's fit over all widths, searched in (0, 4] with a of "
        "either sign and signed by a (negative when the fitted curve rises with N)",
        direction=">",
        margin=0.0,
    )
    gcfgs = [
        GPTConfig(len(corpus.vocab), cfg.block, cfg.n_layer, cfg.n_head, w) for w in cfg.widths
    ]
    with torch.device("meta"):  # the sizes are known before any training
        n = np.array([non_embedding_params(GPT(g)) for g in gcfgs], dtype=np.float64)
    # the largest width is also evaluated after step_eq steps, where its compute 6 N D equals
    # that of the width nearest N_max / 8 after all its steps (up to rounding to a step)
    small, step_eq = equal_compute_pair(n, cfg.steps)
    size_ratio = float(n[-1] / n[small])
    compute_ratio = float(n[-1] * step_eq / (n[small] * cfg.steps))
    iso = ctx.claim(
        f"At equal compute C = 6ND (N non-embedding, Kaplan et al. 2020; largest / smaller = "
        f"{compute_ratio:.3f}), a model "
        f"{size_ratio:.1f}x smaller trained on {cfg.steps / step_eq:.1f}x more tokens reaches "
        "lower loss than the largest model stopped at that compute",
        quantity=f"a = loss of the width whose N is nearest N_max/8 after all {cfg.steps} steps; "
        f"b = loss of the largest width after {step_eq} steps (constant learning rate after "
        "the warmup, so a run stopped early)",
        direction="<",
        margin=0.0,
        paired=True,
    )
    reps = list(ctx.replicates(cfg.seeds))
    replicate_note(ctx, cfg.seeds, {"the fitted exponent": 6})
    every = max(1, cfg.steps // cfg.evals)
    warmup = max(1, cfg.steps // 20)
    val_gen = fixed_generator("scaling_laws", "val", cfg.block)
    val = [corpus.batch("val", cfg.batch, cfg.block, val_gen) for _ in range(cfg.eval_batches)]
    grid_steps = {every * (k + 1) for k in range(cfg.evals)}
    curves = []  # curves[w]: (evals, seeds) validation loss
    for i, (width, gcfg) in enumerate(zip(cfg.widths, gcfgs, strict=True)):
        models = []
        for rep in reps:
            rep.seed_torch("init", width)
            models.append(GPT(gcfg))
        ens = Ensemble(models)
        want = grid_steps | ({step_eq} if i == len(n) - 1 else set())

        def loss_fn(m: Ensemble, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            logits = m(b[0], per_member=True)
            ce = F.cross_entropy(logits.flatten(0, 2), b[1].flatten(), reduction="none")
            return ce.view(len(reps), -1).mean(1)

        @torch.no_grad()
        def evaluate(step: int, ens: Ensemble = ens, want: set = want) -> np.ndarray | None:
            if step not in want:
                return None
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
            eval_every=math.gcd(*want),
        )
        at = dict(res.evals)
        curve = np.array([at[st] for st in sorted(grid_steps)])
        bad = np.atleast_1d(res.diverged)
        curve[:, bad] = np.nan  # a diverged seed has no loss
        curves.append(curve)
        ctx.log(step=None, width=width, N=int(n[i]), val_loss=float(np.nanmean(curve[-1])))
    largest_eq = np.where(bad, np.nan, at[step_eq])  # the largest width after step_eq steps
    d = np.array(sorted(grid_steps)) * tokens_per_step
    grid = np.stack(curves)  # (widths, evals, seeds)
    final = grid[:, -1, :]  # (widths, seeds)

    half = len(n) // 2
    for rep in reps:
        col = final[:, rep.id]
        falls.add(rep.id, decade_slope(n, col))
        lo, hi = slice(None, half), slice(half, None)
        diminish.add(rep.id, -decade_slope(n[lo], col[lo]), -decade_slope(n[hi], col[hi]))
        decays.add(rep.id, signed_exponent(n, col) if np.isfinite(col).all() else math.nan)
        iso.add(rep.id, col[small], largest_eq[rep.id])

    ok = np.isfinite(final)
    n_all = np.repeat(n[:, None], final.shape[1], 1)[ok]
    law = fit_power_law(n_all, final[ok])
    lo, hi = profile_interval_alpha(n_all, final[ok])  # descriptive: seeds are not independent
    mean = np.nanmean(grid, axis=2)  # (widths, evals)
    nn_, dd = np.meshgrid(n, d, indexing="ij")
    chin = fit_chinchilla(nn_.ravel(), dd.ravel(), mean.ravel())
    token_ratio = cfg.steps / step_eq
    for key, value in {
        "alpha": law.alpha, "alpha_lo": lo, "alpha_hi": hi, "r2_L(N)": law.r2,
        "r2_L(N,D)": chin.r2, "iso_size_ratio": size_ratio, "iso_token_ratio": token_ratio,
        "iso_compute_ratio": compute_ratio,
    }.items():  # fmt: skip
        ctx.metric(key, value)
    iso_rows = [
        {"model": arm, "width": cfg.widths[k], "N (non-embedding)": int(n[k]), "steps": st,
         "compute 6ND (FLOPs)": float(6 * n[k] * st * tokens_per_step),
         "val loss (mean)": float(np.nanmean(v))}
        for arm, k, st, v in [("smaller", small, cfg.steps, final[small]),
                              ("largest", -1, step_eq, largest_eq)]
    ]  # fmt: skip
    ctx.table(
        "iso_compute",
        iso_rows,
        note=f"N ratio {size_ratio:.2f}, token ratio {token_ratio:.2f}, compute ratio "
        f"(largest / smaller) {compute_ratio:.3f}; {tokens_per_step} tokens per step",
    )
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
    fit_label = f"{law.a:.3g} N^-{law.alpha:.3f} + {law.c:.3f}  (R^2 {law.r2:.3f})"
    ax[0, 0].plot(grid_n, law(grid_n), "-", color="C1", label=fit_label)
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
    c_eq = 6 * n[small] * cfg.steps * tokens_per_step * np.array([1.0, compute_ratio])
    iso_loss = [np.nanmean(final[small]), np.nanmean(largest_eq)]
    ax[0, 1].plot(c_eq, iso_loss, "r*", ms=10, label="equal-compute pair (claim)")
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
        "fitted power law. Right: each width's loss along training against compute, the "
        "frontier of the fitted L(N, D), and the two models the equal-compute claim compares.",
    )
