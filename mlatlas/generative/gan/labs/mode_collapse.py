"""Lab: mode collapse on the ring and the grid; WGAN-GP and packing against the vanilla GAN."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.generative.gan import (
    MIXTURES,
    member_coverage,
    mlp_gan_ensemble,
    sample,
    split_losses,
    train_gan,
)

# name: (loss, n_critic, pack, Adam betas); the learning rate is the lab's
METHODS = {
    "GAN": ("nonsaturating", 1, 1, (0.5, 0.999)),
    "WGAN-GP": ("wgan-gp", 5, 1, (0.5, 0.9)),
    "PacGAN2": ("nonsaturating", 1, 2, (0.5, 0.999)),
}
# modes covered (of 8 / 25) and % high-quality samples, Lin et al. 2018 (PacGAN), Table 1
PUBLISHED = {
    "ring": {"GAN": (6.3, 98.2), "PacGAN2": (7.9, 95.6)},
    "grid": {"GAN": (17.3, 94.8), "PacGAN2": (23.8, 91.3)},
}


@lab("gan", insights=["Nash equilibria", "training instability"])
def mode_collapse(ctx: Lab) -> None:
    """Mode collapse, measured where the modes are known: the ring of 8 and the grid of 25.

    The equilibrium of the game is q = p, every mode at its weight; gradient play need not
    reach it, and a generator that puts its mass on the modes D currently accepts is a
    local answer D can only chase (Goodfellow 2016, "NIPS tutorial", section 5.1.1). On the
    benchmark mixtures (the ring: 8 modes of std 0.02 on a circle of radius 2; the grid: 25
    modes of std 0.05 at spacing 2), Metz et al.'s MLPs (G z-128-128-2 with z in 64
    dimensions, their 256 at full scale; D 2-128-1, 2m-128-1 for packs of m) are trained for
    the same number of generator steps with

    - the vanilla GAN: the non-saturating loss, one D step per G step;
    - WGAN-GP (Gulrajani et al. 2017): critic loss plus gradient penalty (lambda = 10), five
      critic steps per G step, Adam betas (0.5, 0.9);
    - PacGAN2 (Lin et al. 2018): the vanilla GAN whose D judges pairs of samples.

    All use Adam with lr 1e-3 and 256 samples per update (PacGAN2's D: 128 pairs) for 2,000
    generator steps; the seeds of one method train as one batched ensemble, and seed r's
    generator starts from the same weights for every method. After training, 2,500 samples
    per generator are scored as in VEEGAN (`modes`): a mode is covered when a sample lies
    within 3 std of it; the share of such high-quality samples is reported beside it.

    Published (2,500 samples per generator, averaged over runs): the vanilla GAN covers 6.3
    of 8 and 17.3 of 25, PacGAN2 7.9 and 23.8 with 95.6% and 91.3% of its samples high
    quality (Lin et al. 2018, Table 1); with the setup of Srivastava et al. (2017, Table 1)
    the vanilla GAN covers 1 and 3.3, the unrolled GAN 7.6 (35.6% high quality) and 23.6
    (16%). The target stated as claims, with the method named beforehand from those numbers:
    PacGAN2 covers on average at least 7.5 of 8 and at least 23 of 25 modes; and, paired by
    seed, PacGAN2 and WGAN-GP each cover more modes than the vanilla GAN on both mixtures.
    What separates our setting: 2,000 generator steps where the papers train for tens of
    thousands (the full scale trains for 25,000), and the smaller nets of Metz et al. (Lin
    et al. use 4 x 400 units in G and 3 x 200 maxout units in D).

    At the default scale (seed 0, 8 seeds) PacGAN2 covers all 8 ring modes in every run
    (supported) but 13.75 (10.9-16.6) of the grid's 25 (refuted); it covers more modes than
    the vanilla GAN on both (supported; 0.6 and 3.9 modes for the vanilla GAN, whose samples
    collapse onto a curve), and so does WGAN-GP (2.4 and 13.75; supported). None of these
    generators has concentrated on the modes after 2,000 steps: 0.3-4.4% of their samples
    are high quality, against 91-98% published, so the covered counts here say how widely
    the samples spread over the modes, not that the modes are learnt; hardly any mode holds
    a quarter of the samples it would hold under the data (the table's last column). A claim
    added after that run states the papers' level of sample quality for PacGAN2 (at least
    half its samples high quality on both mixtures), so the record says in a verdict, not
    only here, that the modes are not learnt at this scale.
    """
    cfg = ctx.config(
        mixtures=("ring", "grid"),
        seeds=per_scale(2, 8, 10),
        n_train=per_scale(2000, 100_000, 100_000),
        steps=per_scale(20, 2000, 25_000),
        batch=256,
        z_dim=per_scale(64, 64, 256),
        hidden=128,
        lr=1e-3,
        gp_weight=10.0,
        n_eval=per_scale(300, 2500, 2500),
        evals=per_scale(2, 10, 25),
        target={"ring": 7.5, "grid": 23.0},
    )
    targets = {
        name: ctx.claim(
            f"PacGAN2 covers on average at least {cfg.target[name]:g} of the "
            f"{MIXTURES[name].modes} modes of the {name}",
            insight="Nash equilibria",
            quantity=f"per seed: modes covered by {cfg.n_eval} samples (VEEGAN's rule)",
            direction=">",
            margin=cfg.target[name],
        )
        for name in cfg.mixtures
    }
    # added after the first default run, whose covered counts came with 0.3-4.4% of samples
    # near a mode: the claim that says whether the modes are learnt, at the papers' level
    high_quality = ctx.claim(
        "At least half of PacGAN2's samples are high quality on the ring and on the grid "
        "(published: 95.6% and 91.3%)",
        insight="Nash equilibria",
        quantity=f"per seed and mixture: share of {cfg.n_eval} samples within 3 std of a mode",
        direction=">",
        margin=0.5,
    )
    better = {
        method: ctx.claim(
            f"{method} covers more modes than the vanilla GAN on the ring and on the grid",
            insight="training instability",
            quantity=f"per seed and mixture: modes covered; a = {method}, b = vanilla GAN",
            direction=">",
            margin=0.0,
            paired=True,
        )
        for method in ("PacGAN2", "WGAN-GP")
    }
    reps = list(ctx.replicates(cfg.seeds))
    results, curves, shown = {}, {}, {}
    for name in cfg.mixtures:
        mix = MIXTURES[name]
        data = torch.from_numpy(mix.sample(cfg.n_train, fixed_rng("gan", name)))
        ctx.dataset(record(f"gaussian_{name}", modes=mix.modes, std=mix.std, n=cfg.n_train))

        def evaluate(step: int, g: torch.nn.Module, mix=mix, name=name) -> np.ndarray:
            x = sample(g, cfg.n_eval, cfg.z_dim, ctx.generator("eval", name, step))
            return member_coverage(x, mix.centres, mix.std)[0]

        for method, (loss, n_critic, pack, betas) in METHODS.items():
            model = mlp_gan_ensemble(
                len(reps), lambda r, key: reps[r].seed_torch(key), z_dim=cfg.z_dim, pack=pack
            )
            res = train_gan(
                model,
                data,
                cfg.steps,
                z_dim=cfg.z_dim,
                rng=[r.rng("batches", name) for r in reps],
                noise=ctx.generator("noise", name),
                loss=loss,
                n_critic=n_critic,
                pack=pack,
                batch_size=cfg.batch,
                lr=cfg.lr,
                betas=betas,
                gp_weight=cfg.gp_weight,
                ctx=ctx,
                desc=f"{method} {name}",
                log_every=max(1, cfg.steps // 20),
                evaluate=lambda step, g=model["G"], ev=evaluate: ev(step, g),
                eval_every=max(1, cfg.steps // cfg.evals),
                eval_last=True,
            )
            x = sample(model["G"], cfg.n_eval, cfg.z_dim, ctx.generator("final", name))
            covered, quality = member_coverage(x, mix.centres, mix.std, res.diverged)
            strict, _ = member_coverage(
                x, mix.centres, mix.std, res.diverged, min_count=cfg.n_eval // (4 * mix.modes)
            )
            results[name, method] = (covered, quality, strict)
            curves[name, method] = res
            shown[name, method] = x[0].numpy()
    rows = []
    for r, rep in enumerate(reps):
        for name in cfg.mixtures:
            targets[name].add(rep.id, results[name, "PacGAN2"][0][r])
            high_quality.add(rep.id, results[name, "PacGAN2"][1][r], part=name)
            for method in better:
                a, b = results[name, method][0][r], results[name, "GAN"][0][r]
                better[method].add(rep.id, a, b, part=name)
            for method in METHODS:
                covered, quality, strict = results[name, method]
                rows.append(
                    {
                        "mixture": name,
                        "method": method,
                        "seed": rep.id,
                        "modes covered": covered[r],
                        "high-quality share": quality[r],
                        "modes with >= 1/4 of their share": strict[r],
                        "diverged": bool(np.asarray(curves[name, method].diverged)[r]),
                    }
                )
    ctx.table(
        "coverage",
        rows,
        note=f"{cfg.n_eval} samples per generator after {cfg.steps} generator steps; a sample "
        "is high quality within 3 std of its nearest mode; the last column counts a mode only "
        "when it holds a quarter of the samples it would hold under the data",
    )
    summary = []
    for name in cfg.mixtures:
        for method in METHODS:
            covered, quality, _ = results[name, method]
            pub = PUBLISHED[name].get(method, (None, None))
            summary.append(
                {
                    "mixture": name,
                    "method": method,
                    "mean modes covered": float(np.nanmean(covered)),
                    "mean high-quality share": float(np.nanmean(quality)),
                    "diverged runs": int(np.isnan(covered).sum()),
                    "published modes": pub[0],
                    "published high-quality %": pub[1],
                }
            )
    ctx.table("summary", summary, note="published: Lin et al. 2018, Table 1")
    _figures(ctx, cfg, curves, shown)


def _figures(ctx, cfg, curves, shown) -> None:
    methods = list(METHODS)
    fig, ax = new_figure(len(cfg.mixtures), len(methods), size=(12, 4 * len(cfg.mixtures)))
    for i, name in enumerate(cfg.mixtures):
        mix = MIXTURES[name]
        for j, method in enumerate(methods):
            a = ax[i, j]
            a.scatter(*shown[name, method].T, s=1, alpha=0.3, color=f"C{j}", rasterized=True)
            a.scatter(*mix.centres.T, marker="x", s=12, color="k", lw=0.8)
            a.set(title=f"{method}, {name} (seed 0)", aspect="equal")
            lim = np.abs(mix.centres).max() * 1.6
            a.set(xlim=(-lim, lim), ylim=(-lim, lim))
    ctx.figure("samples", fig, f"{cfg.n_eval} samples of each method's seed-0 generator; x: modes.")
    fig, ax = new_figure(2, len(cfg.mixtures), size=(6 * len(cfg.mixtures), 7))
    for i, name in enumerate(cfg.mixtures):
        for j, method in enumerate(methods):
            res = curves[name, method]
            steps = [s for s, _ in res.evals]
            cov = np.stack([v for _, v in res.evals])
            ax[0, i].plot(steps, cov, color=f"C{j}", lw=0.7, alpha=0.7)
            ax[0, i].plot([], [], color=f"C{j}", label=method)
            d_loss, _ = split_losses(res, METHODS[method][1])
            t = np.arange(1, len(d_loss) + 1)
            ax[1, i].plot(t, d_loss.mean(1), color=f"C{j}", lw=0.3, alpha=0.8)
        ax[0, i].axhline(MIXTURES[name].modes, color="k", ls=":", lw=0.8)
        ax[0, i].set(xlabel="generator step", ylabel="modes covered", title=f"{name}: every run")
        ax[0, i].legend(fontsize=8)
        ax[1, i].set(xlabel="generator step", ylabel="D / critic loss (mean of a step's updates)")
    ctx.figure("training", fig, "Modes covered over training, one line per run; D's losses.")
