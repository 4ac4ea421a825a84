"""Lab: DDPM's ancestral sampler against DDIM's deterministic one, quality against steps."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.figures import image_grid
from mlatlas.generative.diffusion.train import (
    SCHEDULES,
    digit_judge,
    digits,
    judged,
    member_samples,
    shared_denoisers,
    unet_config,
)

METHODS = ("ddim", "ddpm")


@lab("diffusion", insights=["Reverse diffusion process"])
def samplers(ctx: Lab) -> None:
    """The same trained network, sampled by DDPM and by DDIM with 10 to 1,000 steps.

    DDPM (Ho et al. 2020) reverses the chain one step at a time, each step a draw from
    p(x_{t-1} | x_t) = N(μ_θ(x_t, t), β̃_t I); with fewer steps than training's T, it visits a
    subsequence τ and uses the posterior of the skipped chain (the respacing of Nichol &
    Dhariwal 2021), which is DDIM with η = 1. DDIM (Song et al. 2021) keeps the marginals
    q(x_t | x_0) of training but makes the step deterministic (η = 0):

        x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 − ᾱ_{t'}) ε_θ(x_t, t),
        x̂_0 = (x_t − sqrt(1 − ᾱ_t) ε_θ) / sqrt(ᾱ_t),

    so that the whole chain is an ODE-like map from noise to data, which survives large steps.
    Song et al.'s Table 1 (CIFAR-10, a network trained for 800k steps): Fréchet Inception
    distance 13.36 for η = 0 against 41.07 for η = 1 at 10 steps, 4.67 against 8.01 at 50,
    4.04 against 4.73 at 1,000 steps.

    Here the class-conditional U-Nets the guidance and digits labs share (five seeds; see
    `train.unet_config`) sample, without guidance, 400 digits each (40 of every class) with
    both samplers at every step count; the samples of a seed at a step count start from the
    same x_T for both samplers. The yardstick of topic 13 scores them against held-out MNIST
    test digits at the models' 14x14, beside the floor between two halves of real held-out
    digits. Both samplers clip x̂_0 to [−1, 1]; DDIM then re-derives ε from the clipped x̂_0
    (`samplers.ddim_step`). Claims, paired by seed: (1) at the fewest steps, DDIM's Fréchet
    distance is below DDPM's (Song et al.'s finding); (2) DDPM needs its steps: its distance
    at the most steps is below its distance at the fewest. The full scale adds 250 and 1,000
    steps; two CPU cores cannot afford 1,000-step chains for five seeds.

    At the default scale (seed 0), mean Fréchet distance over seeds at 10 / 20 / 50 / 100
    steps: DDIM 41.3 / 37.3 / 33.3 / 34.1, DDPM 40.5 / 32.4 / 28.9 / 28.3, floor 10.5.
    (1) is inconclusive: the DDPM/DDIM ratio at 10 steps is 0.96 [0.71, 1.30]; these small,
    briefly trained networks do not reproduce Song et al.'s gap, and from 20 steps on the
    ancestral sampler is ahead, as Karras et al. (2022) found for imperfect networks, whose
    errors a stochastic sampler's fresh noise keeps correcting while a deterministic chain
    carries them. (2) is inconclusive after the Holm correction over the lab's two claims:
    1.41 [1.05, 1.89], p = 0.015 against the 0.0125 it needs. An earlier run with 400 samples
    per seed supported it (1.54 [1.23, 1.92]); the samples were cut to 300 for the topic's
    time budget before this run. That earlier run also stepped DDIM as diffusers'
    `DDIMScheduler` does with ``clip_sample`` (ε_θ kept beside the clipped x̂_0): its distance
    grew with steps (35 to 67 from 10 to 100 steps, seed 0), which is what led to the
    re-derived ε; that change was made after seeing held-out scores, and is the step of
    Nichol & Dhariwal's guided-diffusion code.
    """
    cfg = unet_config(
        ctx,
        counts=per_scale((5, 10), (10, 20, 50, 100), (10, 20, 50, 100, 250, 1000)),
        n_samples=per_scale(60, 300, 2000),
        clip=1.0,
    )
    few = ctx.claim(
        f"At {cfg.counts[0]} steps DDIM (η = 0) samples are closer to held-out digits than "
        "DDPM's ancestral samples from the same network",
        quantity=f"per seed: Fréchet distance at {cfg.counts[0]} steps; a = DDPM, b = DDIM",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    more = ctx.claim(
        f"DDPM's samples improve with steps: its Fréchet distance at {cfg.counts[-1]} steps is "
        f"below its distance at {cfg.counts[0]}",
        quantity=f"per seed: DDPM's Fréchet distance; a = {cfg.counts[0]} steps, "
        f"b = {cfg.counts[-1]} steps",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    data = digits(cfg.dataset, cfg.pool, cfg.n_test)
    ctx.dataset(data.record)
    reps = list(ctx.replicates(cfg.seeds))
    ens, _, _ = shared_denoisers(ctx, cfg, reps, data)
    judge = digit_judge(data, cfg.n_samples)
    n, side = judge.n, data.side
    sched = SCHEDULES["linear"](cfg.T)
    y = torch.arange(n) % 10
    fd = np.full((len(METHODS), len(cfg.counts), len(reps)), np.nan)
    rows, shown = [], {}
    for i, rep in enumerate(reps):
        for j, count in enumerate(ctx.progress(cfg.counts, desc=f"seed {rep.id}")):
            for k, method in enumerate(METHODS):
                gen = rep.generator("samples", count)  # the same x_T for both samplers
                x = member_samples(
                    ens,
                    sched,
                    (n, 1, side, side),
                    [gen],
                    [i],
                    method=method,
                    steps=count,
                    y=y,
                    clip=cfg.clip,
                )[0]
                s = judge.scores(x, side)
                fd[k, j, i] = s["frechet_distance"]
                rows.append({"seed": rep.id, "steps": count, "sampler": method, **_scores(s)})
                if i == 0:
                    shown[method, count] = judged(x[:40], side).flatten(1).numpy()
    for i, rep in enumerate(reps):
        few.add(rep.id, fd[1, 0, i], fd[0, 0, i])
        more.add(rep.id, fd[1, 0, i], fd[1, -1, i])
    floor = judge.floor
    ctx.table(
        "by_steps",
        rows,
        note=f"{n} samples (no guidance) against {n} held-out digits in {judge.space}; "
        f"real-data floor: FD {floor['frechet_distance']:.3g}, precision "
        f"{floor['precision']:.3f}, recall {floor['recall']:.3f}",
    )
    ctx.metric("floor", _scores(floor))
    ctx.metric(
        "fd_mean",
        {
            m: dict(zip(cfg.counts, fd[k].mean(1).tolist(), strict=True))
            for k, m in enumerate(METHODS)
        },
    )
    _figures(ctx, cfg, fd, floor, shown, side, judge.space)


def _scores(s: dict) -> dict:
    return {k: float(s[k]) for k in ("frechet_distance", "precision", "recall") if k in s}


def _figures(ctx, cfg, fd, floor, shown, side, space) -> None:
    fig, ax = new_figure(1, 1, size=(5.5, 4))
    for k, method in enumerate(METHODS):
        for i in range(fd.shape[2]):
            ax[0, 0].plot(cfg.counts, fd[k, :, i], color=f"C{k}", alpha=0.3, lw=0.8)
        ax[0, 0].plot(cfg.counts, fd[k].mean(1), "o-", color=f"C{k}", label=f"{method}, mean")
    ax[0, 0].axhline(floor["frechet_distance"], color="k", ls=":", label="real-data floor")
    ax[0, 0].set(
        xscale="log",
        yscale="log",
        xlabel="sampling steps",
        ylabel=f"Fréchet distance ({space})",
        title="thin: each seed",
    )
    ax[0, 0].legend(fontsize=8)
    ctx.figure("quality_vs_steps", fig, "Fréchet distance against sampling steps, per sampler.")
    fig, ax = new_figure(len(METHODS), len(cfg.counts), size=(2.6 * len(cfg.counts), 5.6))
    for k, method in enumerate(METHODS):
        for j, count in enumerate(cfg.counts):
            image_grid(ax[k, j], shown[method, count], side, 10, f"{method}, {count} steps")
    ctx.figure("samples", fig, "Seed 0's samples (one class per column) by sampler and steps.")
