"""Lab: beta as a rate-distortion trade-off, and what it does to samples."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.figures import image_grid
from mlatlas.generative.vae.model import VAE
from mlatlas.generative.vae.train import (
    fit_vaes,
    fixed_binarization,
    image_intensities,
    member_rate_distortion,
)
from mlatlas.generative.vae.yardstick import yardstick_for


@lab("vae", insights=["KL divergence regularization", "generation vs reconstruction"])
def rate_distortion(ctx: Lab) -> None:
    """The KL weight beta moves a VAE along a rate-distortion curve (Alemi et al. 2018).

    The beta-VAE objective E_q[log p(x | z)] - beta KL(q(z | x) || p(z)) (Higgins et al.
    2017) prices information: the rate R = E_x KL is the nats the code carries about x, the
    distortion D = E[-log p(x | z)] what is lost; beta = 1 is the ELBO, R + D = -ELBO. One
    VAE per (beta, seed) is trained on dynamically binarized digits, the betas of one seed
    from the same initial weights on the same minibatches, and R and D are measured on
    held-out binarized test images. Alemi et al. show R falls and D rises as beta grows, with
    beta < 1 buying sharper reconstructions at a rate the prior cannot match.

    Samples decode z ~ p(z): they are good when the aggregate posterior fills the prior. With
    small beta the posteriors drift apart and leave holes that prior draws land in; with large
    beta the code carries little and the decoder draws a blurry average. The claims state that
    beta = 1 beats both ends in the yardstick's Fréchet distance (MNIST classifier features;
    pixels on the smoke scale's 8x8 digits), scored against held-out test images with the
    real-data floor beside it.

    A first run at the default scale (five seeds, 2,000 steps, the first 2,000 test images as
    the reference, the floor at n = 1,000) supported the rate and distortion
    claims (R fell 11.9x from beta 0.25 to 8, D rose 2.0x) and the FD claim against beta = 8
    (FD 2.1x higher there), and refuted the one against beta = 0.25: its samples scored a
    lower FD than beta = 1 (217 against 250 at seed 0). Precision and recall split the two:
    beta = 0.25 had the lower precision (0.46 against 0.63, floor 0.89), the samples off the
    data manifold that prior holes predict, and the higher recall (0.48 against 0.39); the
    Fréchet distance, one number, weighed the diversity more. The default now trains 1,500
    steps (the topic's time budget), scores against a fixed random subset of the test images
    and puts the floor at the generators' n (FD 3.18, precision 0.888, recall 0.880 at
    n = 2,000). At that scale the verdicts were the same: R fell 12.0x ([11.7, 12.4]) and D
    rose 2.0x; FD at beta = 8 was 2.2x beta = 1's ([2.1, 2.3]); beta = 0.25 again scored the
    lower FD (0.83x beta = 1's, [0.81, 0.84]; 260 against 309 at seed 0) with the lower
    precision (0.48 against 0.71) and the higher recall (0.38 against 0.24).
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        betas=per_scale((0.5, 1.0, 4.0), (0.25, 1.0, 4.0, 8.0), (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)),
        seeds=per_scale(2, 5, 8),
        steps=per_scale(100, 1500, 20000),
        hidden=per_scale((64,), (256,), (200, 200)),
        z_dim=per_scale(8, 20, 20),
        batch=100,
        lr=2e-3,
        n_test=per_scale(300, 2000, 10000),
        n_samples=per_scale(150, 2000, 5000),
    )
    lo, hi = min(cfg.betas), max(cfg.betas)
    rate = ctx.claim(
        f"Raising beta from {lo:g} to {hi:g} lowers the rate",
        insight="KL divergence regularization",
        quantity=f"per seed: rate (nats); a = beta {lo:g}, b = beta {hi:g}",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    distortion = ctx.claim(
        f"Raising beta from {lo:g} to {hi:g} raises the distortion",
        insight="generation vs reconstruction",
        quantity=f"per seed: distortion (nats); a = beta {hi:g}, b = beta {lo:g}",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    fd_claims = {
        b: ctx.claim(
            f"Prior samples at beta = 1 score a lower Fréchet distance than at beta = {b:g}",
            insight="generation vs reconstruction",
            quantity=f"per seed: Fréchet distance to held-out images; a = beta {b:g}, b = 1",
            direction=">",
            margin=1.0,
            paired=True,
            log=True,
        )
        for b in (lo, hi)
    }
    data = image_intensities(cfg.dataset, n_test=cfg.n_test)
    ctx.dataset(data.record)
    reps = list(ctx.replicates(cfg.seeds))
    n, arms = len(reps), len(cfg.betas)
    x_dim = data.train.shape[1]
    ens, res = fit_vaes(
        ctx,
        reps,
        data.train,
        lambda: VAE(x_dim, cfg.hidden, cfg.z_dim),
        steps=cfg.steps,
        batch=cfg.batch,
        lr=cfg.lr,
        arms=arms,
        beta=torch.tensor(cfg.betas).repeat_interleave(n),
        desc="beta-vae",
    )
    x = fixed_binarization(data.test)
    r_all, d_all = (
        v.numpy().reshape(arms, n) for v in member_rate_distortion(ens, x, ctx.generator("rd"))
    )
    judge = yardstick_for(cfg.dataset, data.test, data.train, data.y_train)
    real = data.test[: cfg.n_samples]  # a fixed random subset of the test images
    # the floor at the generators' n: two disjoint halves of the same test set (the pixel
    # stand-in has only the held-out digits, so its n is capped at half of them)
    n_floor = cfg.n_samples if cfg.dataset == "mnist" else min(cfg.n_samples, len(real) // 2)
    floor = judge.floor(n_floor)
    scores, grids = {}, {}
    for a, beta in enumerate(cfg.betas):
        for r, rep in enumerate(reps):
            m = a * n + r
            samples = ens.member(m).sample(cfg.n_samples, rep.generator("samples"))
            scores[a, r] = judge.scores(real, samples) if not res.diverged[m] else None
            if r == 0:
                grids[beta] = samples[:32].numpy()
    i_lo, i_hi, i_one = cfg.betas.index(lo), cfg.betas.index(hi), cfg.betas.index(1.0)
    rows = []
    for r, rep in enumerate(reps):
        nan = [res.diverged[a * n + r] for a in range(arms)]
        rr = np.where(nan, np.nan, r_all[:, r])
        dd = np.where(nan, np.nan, d_all[:, r])
        fd = [s["frechet_distance"] if s else np.nan for s in (scores[a, r] for a in range(arms))]
        rate.add(rep.id, rr[i_lo], rr[i_hi])
        distortion.add(rep.id, dd[i_hi], dd[i_lo])
        for b, c in fd_claims.items():
            c.add(rep.id, fd[cfg.betas.index(b)], fd[i_one])
        for a, beta in enumerate(cfg.betas):
            s = scores[a, r] or {}
            rows.append(
                {
                    "seed": rep.id,
                    "beta": beta,
                    "rate": rr[a],
                    "distortion": dd[a],
                    "-ELBO = R + D": rr[a] + dd[a],
                    "FD": fd[a],
                    "precision": s.get("precision"),
                    "recall": s.get("recall"),
                    "classes present": s.get("classes_present"),
                    "mean confidence": s.get("mean_confidence"),
                }
            )
    ctx.table(
        "rate_distortion",
        rows,
        note=f"{len(x)} binarized test images; {cfg.n_samples} prior samples scored in "
        f"{judge.space}; real-data floor FD {floor['frechet_distance']:.2f}, precision "
        f"{floor['precision']:.3f}, recall {floor['recall']:.3f}",
    )
    ctx.metric("floor", floor)
    fig, ax = new_figure(1, 2, size=(10, 4))
    for r in range(n):
        ax[0, 0].plot(r_all[:, r], d_all[:, r], "o-", color="0.5", alpha=0.7)
    for a, beta in enumerate(cfg.betas):
        ax[0, 0].annotate(f"beta={beta:g}", (r_all[a, 0], d_all[a, 0]), fontsize=8)
    ax[0, 0].set(xlabel="rate R (nats)", ylabel="distortion D (nats)", title="one line per seed")
    fd_arr = np.array([[row["FD"] for row in rows if row["seed"] == rep.id] for rep in reps])
    for f in fd_arr:
        ax[0, 1].plot(cfg.betas, f, "o-", color="0.5")
    ax[0, 1].axhline(floor["frechet_distance"], color="C2", ls="--", label="real-data floor")
    ax[0, 1].set_xscale("log")
    ax[0, 1].set(xlabel="beta", ylabel=f"Fréchet distance ({judge.space})", title="samples")
    ax[0, 1].legend()
    ctx.figure("rate_distortion", fig, "The rate-distortion plane across beta; FD of samples.")
    fig, ax = new_figure(1, arms, size=(3.2 * arms, 3.4))
    for a, beta in enumerate(cfg.betas):
        image_grid(ax[0, a], grids[beta], data.side, 8, f"beta = {beta:g}")
    ctx.figure("samples_by_beta", fig, "Prior samples (E[x|z]) of seed 0 at each beta.")
    ctx.metric("train_loss_final", res.final_loss)
