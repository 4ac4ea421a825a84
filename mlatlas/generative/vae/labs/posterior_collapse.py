"""Lab: an autoregressive decoder lowers the rate of its posterior; KL warm-up and free bits
resist."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.figures import image_grid
from mlatlas.generative.vae.made import MADEDecoder
from mlatlas.generative.vae.model import VAE
from mlatlas.generative.vae.train import (
    active_units,
    fit_vaes,
    fixed_binarization,
    image_intensities,
    kl_per_unit,
    member_posteriors,
    member_rate_distortion,
)

ARMS = ("plain ELBO", "KL warm-up", "free bits")  # the autoregressive decoder's three arms


@lab("vae", insights=["KL divergence regularization", "Latent space modeling"])
def posterior_collapse(ctx: Lab) -> None:
    """Posterior collapse: when the decoder can model x without z, the KL term pushes z out.

    A VAE with an autoregressive decoder (MADE conditioned on z, `mlatlas.generative.vae.made`)
    can fit the pixels from the pixels before them; the ELBO then reaches its optimum with
    q(z | x) = p(z), where the KL costs nothing (Bowman et al. 2016; Chen et al. 2017). Units
    are counted active when Cov_x(E_q[u]) > 0.01 (Burda et al. 2015). Four models per seed on
    dynamically binarized MNIST pooled to 14x14 (28x28 at full scale), 32 latent units:

    - a factorized Bernoulli decoder (an MLP) with the plain ELBO: the reference;
    - the autoregressive decoder with the plain ELBO;
    - the same with KL warm-up (the KL weight rising from 0 to 1 over the first half of
      training; Bowman et al. 2016, Sønderby et al. 2016);
    - the same with free bits (each unit's batch-mean KL counted as at least 0.25 nats;
      Kingma et al. 2016).

    The three autoregressive arms of a seed start from the same weights and see the same
    minibatches. Claims: with the plain ELBO the autoregressive decoder keeps at most 3 of 32
    units active (full collapse); its rate (an upper bound on the information z carries) is
    below the factorized decoder's; warm-up raises its rate; free bits lower its distortion.
    Bowman et al. report that warm-up alone delays collapse more than it prevents it with an
    LSTM decoder.

    The first default run (replicates 0-5, 2,500 steps) stated the last claims on active-unit
    counts, and found every arm with 30 to 32 of 32 units above Burda et al.'s threshold (the
    full-collapse claim refuted), while the autoregressive plain-ELBO rate was a third of the
    others' (3.3 against 9.9 nats at seed 0; 8.5 with warm-up, 8.8 with free bits, whose
    floor is 0.25 x 32 = 8 nats): at this scale the decoder shrinks what every unit carries
    rather than switching units off, and a count over a fixed threshold does not see it. The
    claims were restated on the rate (on the distortion for free bits, whose rate the floor
    sets: 35.1 nats plain against 30.2 there), and are decided on fresh replicates, ids 6-11,
    which that pilot never saw; the unit counts stay in the table. The remedies' -ELBO is
    not lower (38.4 plain, 38.9 warm-up, 39.0 free bits at pilot seed 0): they buy a used
    code, not a better bound.

    On the fresh replicates (default scale, run seed 0): the full-collapse claim refuted again
    (31.3 of 32 units active on average); the factorized decoder's rate 3.2x the
    autoregressive one's ([3.1, 3.3]; 10.1 against 3.3 nats at replicate 6); warm-up raised
    the rate 2.6x ([2.5, 2.8]); free bits lowered the distortion 1.16x ([1.157, 1.170]; 35.0
    against 30.3 nats): three supported.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        pool=per_scale(1, 2, 1),
        seeds=per_scale(2, 6, 8),
        steps=per_scale(100, 2500, 20000),
        hidden=per_scale((64,), (256,), (500,)),
        made_hidden=per_scale(64, 256, 500),
        z_dim=32,
        batch=100,
        lr=2e-3,
        warmup_share=0.5,
        free_bits=0.25,
        n_test=per_scale(300, 2000, 10000),
        max_active_collapsed=3,
        first_replicate=6,
    )
    collapsed = ctx.claim(
        f"With the plain ELBO the autoregressive decoder keeps at most "
        f"{cfg.max_active_collapsed} of {cfg.z_dim} units active",
        insight="Latent space modeling",
        quantity="per seed: active units of the autoregressive decoder, plain ELBO",
        direction="<",
        margin=cfg.max_active_collapsed + 0.5,
    )
    less = ctx.claim(
        "An autoregressive decoder's posterior has a lower rate than a factorized decoder's",
        insight="Latent space modeling",
        quantity="per seed: rate (nats); a = factorized decoder, b = autoregressive, plain ELBO",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    warm = ctx.claim(
        "KL warm-up raises the rate over the plain ELBO with the autoregressive decoder",
        insight="KL divergence regularization",
        quantity="per seed: rate (nats); a = KL warm-up, b = plain ELBO",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    # free bits put a floor of lam * d nats under the KL term, so their rate says little: the
    # claim is on the distortion, what a code that is used buys
    bits = ctx.claim(
        "Free bits lower the distortion below the plain ELBO's with the autoregressive decoder",
        insight="KL divergence regularization",
        quantity="per seed: distortion (nats); a = plain ELBO, b = free bits",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
    )
    data = image_intensities(cfg.dataset, n_test=cfg.n_test, pool=cfg.pool)
    ctx.dataset(data.record)
    # replicates after the pilot's ids 0-5, on which three of the claims were restated
    reps = list(ctx.replicates(cfg.seeds, first=cfg.first_replicate))
    n, x_dim = len(reps), data.train.shape[1]
    common = dict(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr)
    flat, res_flat = fit_vaes(
        ctx,
        reps,
        data.train,
        lambda: VAE(x_dim, cfg.hidden, cfg.z_dim),
        desc="factorized",
        **common,
    )
    arm_of = torch.arange(len(ARMS)).repeat_interleave(n)
    made, res_made = fit_vaes(
        ctx,
        reps,
        data.train,
        lambda: VAE(x_dim, cfg.hidden, cfg.z_dim, MADEDecoder(cfg.z_dim, cfg.made_hidden, x_dim)),
        arms=len(ARMS),
        desc="autoregressive",
        warmup=torch.where(arm_of == 1, cfg.warmup_share * cfg.steps, 0.0),
        free_bits=torch.where(arm_of == 2, cfg.free_bits, 0.0),
        **common,
    )
    x = fixed_binarization(data.test)
    measured = {}
    for name, ens, res in (("factorized", flat, res_flat), ("autoregressive", made, res_made)):
        mu, logvar = member_posteriors(ens, x)
        rate, dist = member_rate_distortion(ens, x, ctx.generator("rd", name))
        bad = torch.as_tensor(np.asarray(res.diverged, dtype=bool))
        au = torch.where(bad, float("nan"), active_units(mu).double())
        measured[name] = (au.numpy(), rate.numpy(), dist.numpy(), kl_per_unit(mu, logvar).numpy())
    au_f, rate_f, dist_f, klu_f = measured["factorized"]
    au_m, rate_m, dist_m, klu_m = measured["autoregressive"]
    rows = []
    bad_f, bad_m = np.isnan(au_f), np.isnan(au_m)  # diverged runs have no rate of their own
    rate_f, rate_m = np.where(bad_f, np.nan, rate_f), np.where(bad_m, np.nan, rate_m)
    for r, rep in enumerate(reps):
        collapsed.add(rep.id, au_m[r])
        less.add(rep.id, rate_f[r], rate_m[r])
        warm.add(rep.id, rate_m[n + r], rate_m[r])
        bits.add(rep.id, dist_m[r], np.where(bad_m, np.nan, dist_m)[2 * n + r])
        rows.append(
            {
                "seed": rep.id,
                "decoder": "factorized",
                "objective": "plain ELBO",
                "active units": au_f[r],
                "rate": rate_f[r],
                "distortion": dist_f[r],
            }
        )
        for a, arm in enumerate(ARMS):
            m = a * n + r
            rows.append(
                {
                    "seed": rep.id,
                    "decoder": "autoregressive",
                    "objective": arm,
                    "active units": au_m[m],
                    "rate": rate_m[m],
                    "distortion": dist_m[m],
                }
            )
    ctx.table(
        "collapse",
        rows,
        note=f"{len(x)} binarized test images ({data.side}x{data.side}); rate and distortion in "
        "nats per image; -ELBO = rate + distortion",
    )
    fig, ax = new_figure(1, 3, size=(14, 4))
    labels = ["factorized\nplain", *[f"autoregr.\n{a}" for a in ARMS]]
    per_seed = np.stack([au_f, *au_m.reshape(len(ARMS), n)])  # (4, n)
    for r in range(n):
        ax[0, 0].plot(range(4), per_seed[:, r], "o-", color="0.5", alpha=0.7)
    ax[0, 0].set_xticks(range(4), labels, fontsize=8)
    ax[0, 0].set(ylabel=f"active units (of {cfg.z_dim})", title="one line per seed")
    for lab_, klu in zip(labels, [klu_f[0], *klu_m.reshape(len(ARMS), n, -1)[:, 0]], strict=True):
        ax[0, 1].plot(np.sort(klu)[::-1], "o-", ms=3, label=lab_.replace("\n", " "))
    ax[0, 1].set_yscale("symlog", linthresh=1e-3)
    ax[0, 1].set(xlabel="unit (sorted)", ylabel="KL per unit (nats)", title="seed 0")
    ax[0, 1].legend(fontsize=7)
    steps = np.arange(1, cfg.steps + 1)
    for a, arm in enumerate(ARMS):
        ax[0, 2].plot(steps, res_made.losses[: len(steps), a * n], lw=0.6, label=f"autoregr. {arm}")
    ax[0, 2].plot(steps, res_flat.losses[: len(steps), 0], lw=0.6, label="factorized")
    ax[0, 2].set(xlabel="step", ylabel="training loss (nats)", title="seed 0")
    ax[0, 2].legend(fontsize=7)
    ctx.figure("posterior_collapse", fig, "Active units per arm; KL per unit; training curves.")
    g = reps[0].generator("samples")
    fig, ax = new_figure(1, 3, size=(11, 3.8))
    image_grid(ax[0, 0], flat.member(0).sample(32, g).numpy(), data.side, 8, "factorized")
    for i, a in enumerate((0, 2), start=1):
        z = torch.randn(32, cfg.z_dim, generator=g)
        pix = made.member(a * n).decoder.sample(z, g).numpy()
        image_grid(ax[0, i], pix, data.side, 8, f"autoregressive, {ARMS[a]}")
    ctx.figure(
        "samples", fig, "Prior samples of seed 0 (the autoregressive ones drawn pixel by pixel)."
    )
    ctx.metric(
        "train_loss_final",
        {"factorized": res_flat.final_loss, "autoregressive": res_made.final_loss},
    )
