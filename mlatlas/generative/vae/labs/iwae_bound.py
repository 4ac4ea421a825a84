"""Lab: the importance-weighted bound tightens with k; test negative log-likelihood on
binarized MNIST beside Burda et al. (2015)."""

from __future__ import annotations

import numpy as np

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.generative.vae.model import VAE
from mlatlas.generative.vae.train import (
    active_units,
    draw_training_and_samples,
    fit_vaes,
    fixed_binarization,
    image_intensities,
    member_bounds,
    member_posteriors,
)

BURDA = {"VAE": 86.76, "IWAE, k=50": 84.78}  # Burda et al. 2015, Table 1, one stochastic layer


@lab("vae", insights=["Latent space modeling"])
def iwae_bound(ctx: Lab) -> None:
    """The ELBO is a bound; k importance samples tighten it (Burda et al. 2015).

    VAEs with Burda et al.'s one-stochastic-layer architecture (784-200-200-50, tanh, a
    Bernoulli decoder) are trained on dynamically binarized MNIST with the ELBO (Adam, the
    learning rate decayed linearly to zero over the last 30% of steps), then scored on the
    binarized held-out test images (a fixed random subset) with L_k for k = 1, 5, 50, 500,
    each from samples of its own (max(k, 100) per image, the mean over their disjoint groups
    of k; groups nested in one draw would be ordered by Jensen's inequality whatever the
    model), and the negative log-likelihood estimate -L_1000 (Burda et al. use k = 5000;
    -L_k only falls with k in expectation, so ours can only overstate the NLL).

    Burda et al. (Table 1) report a test NLL of 86.76 nats for this VAE and 84.78 for the
    IWAE trained with k = 50, after 3,280 passes over the data; the default scale here trains
    for a few passes (the record gives how many), so its NLL is higher, and the claim states
    the target it should still reach: at most 100 nats. The bound-tightening claim is a
    theorem in expectation (Burda et al., Theorem 1); what the lab measures is how large the
    steps are on a trained model, and the gap between the ELBO and the NLL estimate, a lower
    bound on the KL from q(z | x) to the true posterior that the diagonal Gaussian encoder
    leaves.

    A first run at the default scale (five seeds, 8,000 steps = 13.3 epochs, run seed 0)
    scored the *first* 300 test images, with every k's groups nested in one draw of 1,000.
    MNIST's test file is ordered (its first 5,000 digits come from other writers than its
    last 5,000 and carry less ink: summed intensities in [0, 1] of 96 against 112 per image
    on average), so those numbers are biased low, and nested groups made the ordering unable
    to fail. That run found an NLL estimate of 94.7 nats ([93.5, 95.9]), 8 nats above Burda et
    al.'s VAE after 246 times fewer epochs; a smallest step of the bound (L_500 - L_50) of
    0.52 nats; the ELBO 3.8 nats ([3.6, 3.9]) below L_1000; 14 to 19 of the 50 units active.
    In the present form, at the same scale, all three were supported again: NLL 94.8 nats
    ([93.8, 95.9]; 94.5 at seed 0), the smallest step of the bound 0.54 nats ([0.50, 0.58]),
    the ELBO 3.8 nats ([3.6, 4.1]) below L_1000.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        seeds=per_scale(2, 5, 5),
        steps=per_scale(150, 8000, 200_000),
        hidden=per_scale((64,), (200, 200), (200, 200)),
        z_dim=per_scale(10, 50, 50),
        batch=100,
        lr=2e-3,
        n_test=per_scale(50, 300, 10_000),
        ks=(1, 5, 50, 500, 1000),
        nll_target=per_scale(100.0, 100.0, 88.0),
    )
    tighter = ctx.claim(
        "The importance-weighted bound tightens as k grows: L_5 > L_1, L_50 > L_5, L_500 > L_50",
        quantity="per seed: mean over test images of L_k (nats); a = larger k, b = smaller k",
        direction=">",
        margin=0.0,
        paired=True,
    )
    gap = ctx.claim(
        "The ELBO lies more than 1 nat below the k = 1000 estimate of log p(x)",
        quantity="per seed: mean over test images of L_1000 - L_1 (nats)",
        direction=">",
        margin=1.0,
    )
    nll = ctx.claim(
        f"Test NLL (-L_1000) of a VAE trained at this scale is at most {cfg.nll_target:g} nats",
        quantity="per seed: -mean L_1000 over binarized test images (nats)",
        direction="<",
        margin=cfg.nll_target,
    )
    data = image_intensities(cfg.dataset, n_test=cfg.n_test)
    ctx.dataset(data.record)
    reps = list(ctx.replicates(cfg.seeds))
    x_dim = data.train.shape[1]
    decay_from = int(0.7 * cfg.steps)
    ens, res = fit_vaes(
        ctx,
        reps,
        data.train,
        lambda: VAE(x_dim, cfg.hidden, cfg.z_dim),
        steps=cfg.steps,
        batch=cfg.batch,
        lr=cfg.lr,
        schedule=lambda t: cfg.lr * min(1.0, (cfg.steps - t) / (cfg.steps - decay_from)),
    )
    x = fixed_binarization(data.test)
    bounds = member_bounds(ens, x, cfg.ks, ctx.generator("bounds"))
    mean = {k: v.mean(1).numpy().astype(float) for k, v in bounds.items()}
    mu, _ = member_posteriors(ens, x)
    au = active_units(mu).numpy()
    rows = []
    for r, rep in enumerate(reps):
        ok = not res.diverged[r]
        m = {k: (mean[k][r] if ok else float("nan")) for k in cfg.ks}
        for small, large in [(1, 5), (5, 50), (50, 500)]:
            tighter.add(rep.id, m[large], m[small], part=f"k={large} vs {small}")
        gap.add(rep.id, m[1000] - m[1])
        nll.add(rep.id, -m[1000])
        rows.append(
            {"seed": rep.id, **{f"L_{k}": m[k] for k in cfg.ks}, "active units": int(au[r])}
        )
    epochs = cfg.steps * cfg.batch / len(data.train)
    ctx.table(
        "bounds",
        rows,
        note=f"{len(x)} binarized test images, {cfg.steps} steps of {cfg.batch} "
        f"({epochs:.1f} epochs); NLL = -L_1000. Burda et al. 2015 (3,280 epochs, k = 5000): "
        f"VAE {BURDA['VAE']}, IWAE k=50 {BURDA['IWAE, k=50']} nats",
    )
    ctx.metric("epochs", epochs)
    ctx.metric("nll_mean", float(np.nanmean([-row["L_1000"] for row in rows])))
    fig, ax = new_figure(1, 3, size=(14, 4))
    ks = np.array(cfg.ks)
    for row in rows:
        ax[0, 0].plot(ks, [row[f"L_{k}"] for k in cfg.ks], "o-", color="0.5")
    ax[0, 0].set_xscale("log")
    ax[0, 0].set(xlabel="k", ylabel="L_k (nats per image)", title="bound vs k, one line per seed")
    if cfg.dataset == "mnist":
        for (name, v), c in zip(BURDA.items(), ("C1", "C2"), strict=True):
            ax[0, 0].axhline(-v, color=c, ls="--", label=f"Burda et al. 2015, {name}: -{v}")
        ax[0, 0].legend(fontsize=7)
    draw_training_and_samples(
        ax[0, 1], ax[0, 2], res, ens.member(0), data.side, reps[0].generator("samples"), 48
    )
    ctx.figure("iwae_bound", fig, "L_k against k per seed; the training curves; samples.")
    ctx.metric("train_loss_final", res.final_loss)
