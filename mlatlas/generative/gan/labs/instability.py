"""Lab: how the discriminator's learning rate and steps per generator step move the game."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.generative.gan import (
    MIXTURES,
    member_coverage,
    mlp_gan_ensemble,
    mode_coverage,
    sample,
    train_gan,
)


def changed_modes(evals: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Per run, the mean number of modes whose covered / not-covered status flips between
    consecutive evaluations (each an (R, K) array of high-quality counts): a generator that
    hops between modes flips many, one that settles flips none. NaN for a run whose counts
    are not all finite."""
    counts = np.stack([np.asarray(c, dtype=float) for _, c in evals])  # (E, R, K)
    if len(counts) < 2:
        return np.full(counts.shape[1], np.nan)
    flips = np.diff(counts > 0, axis=0).sum(-1).mean(0).astype(float)
    return np.where(np.isfinite(counts).all((0, 2)), flips, np.nan)


@lab("gan", insights=["training instability"])
def instability(ctx: Lab) -> None:
    """The vanilla GAN's sensitivity to its discriminator: learning-rate ratio and D steps.

    Gradient play on the GAN game is stable only in a neighbourhood of an equilibrium and for
    some step sizes (Mescheder et al. 2017, 2018); in practice the knobs are the ratio of the
    two players' learning rates (TTUR, Heusel et al. 2017, who prove convergence to a local
    Nash equilibrium when D's rate dominates; SAGAN and BigGAN train D at 4x G's rate) and
    the number of D steps per G step (Goodfellow et al. 2014, Algorithm 1's k; WGAN's 5).
    Here the non-saturating GAN of `mode_collapse` (Metz et al.'s MLPs, Adam, beta1 0.5, G's
    lr 1e-3) trains on the grid of 25 Gaussians for every cell of D's lr / G's lr in
    {1/4, 1, 4} x D steps in {1, 5}, the seeds of a cell as one ensemble, seed r starting
    from the same weights and minibatch stream in every cell.

    Counted per cell, never dropped: runs that diverged (a NaN loss), runs that collapsed
    (samples covering at most half of the 25 modes) and, as a measure of the oscillation,
    the modes whose covered status flips between consecutive evaluations. Claims, fixed
    from the TTUR argument before measuring, paired by seed: a discriminator at 4x G's rate
    covers more modes than one at 1/4 of it (one D step), and five D steps per G step cover
    more modes than one (equal rates). A diverged run counts as covering no mode.

    At the default scale (seed 0, 6 seeds, 1,200 generator steps) the mean modes covered are,
    with one D step, 1.0, 2.3 and 17.7 at D's rate x1/4, x1, x4, and with five D steps 4.2,
    19.5 and 15.3. Both claims are supported (+16.7 modes, 15.0-18.4; +17.2, 14.9-19.4). No
    run diverged; every run of the three weak-D cells (x1/4 with either step count, x1 with
    one step) stayed on a patch of a few modes, no run of the others did. As in
    `mode_collapse`, no cell concentrates on the modes yet (at most 3% of samples within 3
    std of one): a stronger discriminator spreads the generator over the grid sooner; the
    flips grow with the spread (1-10 modes per evaluation), a sign of samples that touch
    modes at random rather than of settled ones.
    """
    cfg = ctx.config(
        mixture="grid",
        seeds=per_scale(2, 6, 10),
        ratios=(0.25, 1.0, 4.0),
        d_steps=(1, 5),
        n_train=per_scale(2000, 100_000, 100_000),
        steps=per_scale(20, 1200, 25_000),
        batch=256,
        z_dim=per_scale(64, 64, 256),
        hidden=128,
        lr=1e-3,
        n_eval=per_scale(300, 2500, 2500),
        evals=per_scale(2, 10, 25),
    )
    faster = ctx.claim(
        f"A discriminator learning at {max(cfg.ratios):g}x the generator's rate covers more "
        f"modes than one at {min(cfg.ratios):g}x",
        quantity=f"per seed: modes covered after {cfg.steps} steps, one D step; "
        f"a = D lr {max(cfg.ratios):g}x G's, b = {min(cfg.ratios):g}x",
        direction=">",
        margin=0.0,
        paired=True,
        on_failure=0.0,
    )
    more = ctx.claim(
        f"{max(cfg.d_steps)} discriminator steps per generator step cover more modes than "
        f"{min(cfg.d_steps)}",
        quantity=f"per seed: modes covered, equal rates; a = {max(cfg.d_steps)} D steps, "
        f"b = {min(cfg.d_steps)}",
        direction=">",
        margin=0.0,
        paired=True,
        on_failure=0.0,
    )
    mix = MIXTURES[cfg.mixture]
    data = torch.from_numpy(mix.sample(cfg.n_train, fixed_rng("gan", cfg.mixture)))
    ctx.dataset(record(f"gaussian_{cfg.mixture}", modes=mix.modes, std=mix.std, n=cfg.n_train))
    reps = list(ctx.replicates(cfg.seeds))
    cells = [(ratio, k) for k in cfg.d_steps for ratio in cfg.ratios]
    covered, hq, flips, diverged, curves, shown = {}, {}, {}, {}, {}, {}
    for ratio, k in cells:
        model = mlp_gan_ensemble(
            len(reps), lambda r, key: reps[r].seed_torch(key), z_dim=cfg.z_dim, hidden=cfg.hidden
        )
        betas = (0.5, 0.999)
        opts = (
            torch.optim.Adam(model["D"].parameters(), lr=ratio * cfg.lr, betas=betas),
            torch.optim.Adam(model["G"].parameters(), lr=cfg.lr, betas=betas),
        )

        def evaluate(step: int, g=model["G"], key=(ratio, k)) -> np.ndarray:
            """High-quality samples per mode, (R, K); NaN rows for non-finite samples."""
            x = sample(g, cfg.n_eval, cfg.z_dim, ctx.generator("eval", *key, step)).numpy()
            return np.stack(
                [
                    mode_coverage(xr, mix.centres, mix.std).counts.astype(float)
                    if np.isfinite(xr).all()
                    else np.full(mix.modes, np.nan)
                    for xr in x
                ]
            )

        res = train_gan(
            model,
            data,
            cfg.steps,
            z_dim=cfg.z_dim,
            rng=[r.rng("batches") for r in reps],
            noise=ctx.generator("noise", ratio, k),
            n_critic=k,
            batch_size=cfg.batch,
            optimizers=opts,
            ctx=ctx,
            desc=f"D lr x{ratio:g}, {k} D steps",
            log_every=max(1, cfg.steps // 20),
            evaluate=evaluate,
            eval_every=max(1, cfg.steps // cfg.evals),
            eval_last=True,
        )
        x = sample(model["G"], cfg.n_eval, cfg.z_dim, ctx.generator("final", ratio, k))
        bad = np.asarray(res.diverged, dtype=bool)
        covered[ratio, k], hq[ratio, k] = member_coverage(x, mix.centres, mix.std, bad)
        flips[ratio, k], diverged[ratio, k] = changed_modes(res.evals), bad
        curves[ratio, k], shown[ratio, k] = res, x[0].numpy()
    lo, hi, one = min(cfg.ratios), max(cfg.ratios), 1.0
    k1, k5 = min(cfg.d_steps), max(cfg.d_steps)
    rows = []
    for r, rep in enumerate(reps):
        faster.add(rep.id, covered[hi, k1][r], covered[lo, k1][r])
        more.add(rep.id, covered[one, k5][r], covered[one, k1][r])
        for ratio, k in cells:
            rows.append(
                {
                    "seed": rep.id,
                    "D lr / G lr": ratio,
                    "D steps": k,
                    "modes covered": covered[ratio, k][r],
                    "high-quality share": hq[ratio, k][r],
                    "flips per evaluation": flips[ratio, k][r],
                    "diverged": bool(diverged[ratio, k][r]),
                }
            )
    ctx.table("runs", rows, note=f"{cfg.n_eval} samples per generator after {cfg.steps} steps")
    half = mix.modes // 2
    summary = [
        {
            "D lr / G lr": ratio,
            "D steps": k,
            "mean modes covered": float(np.nanmean(covered[ratio, k])),
            "diverged runs": int(diverged[ratio, k].sum()),
            f"collapsed runs (<= {half} modes)": int(
                (np.nan_to_num(covered[ratio, k]) <= half).sum()
            ),
            "mean flips per evaluation": float(np.nanmean(flips[ratio, k])),
        }
        for ratio, k in cells
    ]
    ctx.table(
        "cells",
        summary,
        note=f"{len(reps)} runs per cell; a diverged run is also counted as collapsed",
    )
    _figures(ctx, cfg, cells, covered, diverged, curves, shown, mix)


def _figures(ctx, cfg, cells, covered, diverged, curves, shown, mix) -> None:
    fig, ax = new_figure(1, 2, size=(11, 4))
    grid = np.array(
        [
            [np.nanmean(np.where(diverged[r, k], 0, covered[r, k])) for r in cfg.ratios]
            for k in cfg.d_steps
        ]
    )
    im = ax[0, 0].imshow(grid, cmap="viridis", vmin=0, vmax=mix.modes, origin="lower")
    for (i, j), v in np.ndenumerate(grid):
        ax[0, 0].text(j, i, f"{v:.1f}", ha="center", va="center", color="w")
    ax[0, 0].set_xticks(range(len(cfg.ratios)), [f"{r:g}" for r in cfg.ratios])
    ax[0, 0].set_yticks(range(len(cfg.d_steps)), [str(k) for k in cfg.d_steps])
    ax[0, 0].set(xlabel="D lr / G lr", ylabel="D steps per G step", title="mean modes covered")
    ax[0, 0].grid(False)
    fig.colorbar(im, ax=ax[0, 0])
    for c, (ratio, k) in enumerate(cells):
        x = np.full(len(covered[ratio, k]), c) + np.linspace(-0.15, 0.15, len(covered[ratio, k]))
        ax[0, 1].scatter(x, covered[ratio, k], s=12, color=f"C{c}")
    ax[0, 1].set_xticks(range(len(cells)), [f"x{r:g}\n{k} D" for r, k in cells])
    ax[0, 1].set(ylabel="modes covered", title="every run")
    ctx.figure("grid", fig, "Mean modes covered per cell of the grid; every run.")
    fig, ax = new_figure(1, len(cfg.d_steps), size=(6 * len(cfg.d_steps), 4))
    for j, k in enumerate(cfg.d_steps):
        for c, ratio in enumerate(cfg.ratios):
            res = curves[ratio, k]
            steps = [s for s, _ in res.evals]
            cov = np.stack([(np.asarray(v) > 0).sum(-1) for _, v in res.evals])
            ax[0, j].plot(steps, cov, color=f"C{c}", lw=0.7, alpha=0.8)
            ax[0, j].plot([], [], color=f"C{c}", label=f"D lr x{ratio:g}")
        ax[0, j].set(xlabel="generator step", ylabel="modes covered", ylim=(0, mix.modes + 1))
        ax[0, j].set_title(f"{k} D step(s) per G step, every run")
        ax[0, j].legend(fontsize=7)
    ctx.figure("runs", fig, "Modes covered over training, one line per run.")
    fig, ax = new_figure(len(cfg.d_steps), len(cfg.ratios), size=(3 * len(cfg.ratios), 6.2))
    for (ratio, k), x in shown.items():
        a = ax[cfg.d_steps.index(k), cfg.ratios.index(ratio)]
        a.scatter(*x.T, s=1, alpha=0.3, rasterized=True)
        a.scatter(*mix.centres.T, marker="x", s=8, color="k", lw=0.6)
        a.set(aspect="equal", xlim=(-6, 6), ylim=(-6, 6), xticks=[], yticks=[])
        a.set_title(f"D lr x{ratio:g}, {k} D steps", fontsize=9)
    ctx.figure("samples", fig, f"{cfg.n_eval} samples of seed 0's generator in every cell.")
