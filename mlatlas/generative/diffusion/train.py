r"""Training and sampling helpers the diffusion labs share: ensembles of ε-networks on digits.

`fit_denoisers` trains ``arms * R`` ε-networks as one `Ensemble` with Adam on $L_\text{simple}$
(Ho et al. 2020, eq. 14): member ``a * R + r`` is arm a of replicate r, and arm a has its own
noise schedule (the schedules lab trains a linear and a cosine arm). The arms of a replicate
start from the same weights and see the same minibatches, the same steps t, the same noise ε
and the same dropped labels, so arms are paired by seed; only the schedule that turns
(x_0, t, ε) into x_t differs. Labels are dropped to ∅ with probability ``p_uncond`` so that
one network learns both ε(x, c) and ε(x, ∅) for classifier-free guidance (Ho & Salimans 2022
use 0.1 to 0.2).

Members run in a Python loop (`Ensemble.call(loop=True)`) rather than under vmap: on a CPU,
vmap turns a batch of convolutions into one grouped convolution, which is several times
slower for this U-Net than R plain ones.

Digits are modelled in [−1, 1] (the range of Ho et al.'s images, which the samplers clip
x̂_0 to); `judged` maps samples back to what the yardstick of topic 13 reads: MNIST's
classifier at 28x28 (samples made at 14x14 are upsampled bilinearly, and the real
held-out images make the same round trip, so the floor and the samples see the same blur),
the pixel yardstick at 8x8 for scikit-learn's digits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlatlas.core import shared as core_shared
from mlatlas.core.ensemble import Ensemble, make_ensemble
from mlatlas.core.fitting import FitContext, FitResult
from mlatlas.core.lab import per_scale
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import fit
from mlatlas.generative.diffusion.process import draw_t_eps, drop_labels, q_sample
from mlatlas.generative.diffusion.samplers import sample
from mlatlas.generative.diffusion.schedules import Schedule, cosine_schedule, linear_schedule
from mlatlas.generative.diffusion.unet import UNet
from mlatlas.generative.vae.train import Images, image_intensities, step_batches
from mlatlas.generative.vae.yardstick import yardstick_for

TRAINING_CODE = (  # the modules whose source decides what a shared key trains
    "mlatlas.generative.diffusion.train",
    "mlatlas.generative.diffusion.process",
    "mlatlas.generative.diffusion.schedules",
    "mlatlas.generative.diffusion.unet",
    "mlatlas.generative.vae.train",
    *core_shared.CORE_TRAINING_CODE,
)
SCHEDULES: dict[str, Callable[[int], Schedule]] = {
    "linear": lambda T: linear_schedule(T),
    "cosine": lambda T: cosine_schedule(T),
}


def to_model(x: Tensor, side: int) -> Tensor:
    """Flattened intensities (n, side²) in [0, 1] as (n, 1, side, side) in [−1, 1]."""
    return x.view(-1, 1, side, side) * 2 - 1


def denoiser_objective(
    data: Tensor,
    labels: Tensor | None,
    schedules: Sequence[Schedule],
    reps: int,
    p_uncond: float = 0.0,
    null_class: int | None = None,
    loop: bool = True,
) -> Callable[[Ensemble, tuple[Tensor, Tensor], torch.Generator], Tensor]:
    """loss_fn(ens, (idx, step), noise) for `fit`: member m's L_simple on ``data[idx[m]]``
    under ``schedules[m // reps]``, shape (arms * reps,). Per replicate, one draw of t, ε (and
    of the dropped labels) from `noise`, shared by its arms."""

    def loss_fn(ens: Ensemble, batch: tuple[Tensor, Tensor], noise: torch.Generator) -> Tensor:
        idx, _ = batch
        x0 = data[idx]  # (M, B, C, H, W)
        draws = []
        for r in range(reps):
            t, eps = draw_t_eps(schedules[0], x0[r], noise)  # t ~ U{0..T−1}: no schedule in it
            y = None if labels is None else labels[idx[r]]
            if y is not None and p_uncond > 0:
                y = drop_labels(y, null_class, p_uncond, noise)
            draws.append((t, eps, y))
        x_t = torch.stack(
            [
                q_sample(schedules[m // reps], x0[m], draws[m % reps][0], draws[m % reps][1])
                for m in range(len(x0))
            ]
        )
        t = torch.stack([draws[m % reps][0] for m in range(len(x0))])
        eps = torch.stack([draws[m % reps][1] for m in range(len(x0))])
        if labels is None:
            pred = ens.call(lambda f, a, b: f(a, b), x_t, t, per_member=True, loop=loop)
        else:
            y = torch.stack([draws[m % reps][2] for m in range(len(x0))])
            pred = ens.call(lambda f, a, b, c: f(a, b, c), x_t, t, y, per_member=True, loop=loop)
        return (eps - pred).pow(2).flatten(1).mean(1)

    return loss_fn


def fit_denoisers(
    ctx: FitContext | None,
    reps: Sequence[Replicate],
    data: Tensor,
    labels: Tensor | None,
    build: Callable[[], nn.Module],
    *,
    schedules: Sequence[Schedule],
    steps: int,
    batch: int,
    lr: float,
    p_uncond: float = 0.0,
    desc: str = "denoisers",
    loop: bool = True,
) -> tuple[Ensemble, FitResult]:
    """Train ``len(schedules) * len(reps)`` ε-networks as one ensemble with Adam (see the
    module docstring); `data` is (n, C, H, W) in [−1, 1]. A linear warm-up of the learning
    rate over the first 5% of the steps, then constant (Ho et al. warm up over 5,000 steps).
    ``loop=False`` runs the members under vmap, faster for MLPs."""
    n = len(reps)
    arms = len(schedules)
    ens = make_ensemble(lambda m: build(), arms * n, lambda m: reps[m % n].seed_torch("init"))
    null = getattr(ens.base, "null_class", None)
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    gens = [reps[m % n].generator("batches") for m in range(arms * n)]
    streams = [lambda g=g: torch.randint(0, len(data), (batch,), generator=g) for g in gens]
    warm = max(1, steps // 20)
    res = fit(
        ens,
        opt,
        denoiser_objective(data, labels, schedules, n, p_uncond, null, loop),
        step_batches(streams, steps),
        steps,
        ctx=ctx,
        desc=desc,
        log_every=max(1, steps // 50),
        noise=reps[0].generator("noise", desc),
        schedule=lambda t: lr * min(1.0, (t + 1) / warm),
    )
    return ens, res


@torch.no_grad()
def member_samples(
    ens: Ensemble,
    sched: Schedule,
    shape: tuple[int, ...],
    generators: Sequence[torch.Generator],
    members: Sequence[int] | None = None,
    **sampler: Any,
) -> Tensor:
    """Samples (len(members), *shape) of the chosen members (all by default), member i's from
    ``generators[i]``; `sampler` goes to `samplers.sample` (method, steps, eta, y, w, clip)."""
    members = range(ens.size) if members is None else members
    out = []
    for i, m in enumerate(members):
        model = ens.member(m).eval()
        null = getattr(model, "null_class", None)
        out.append(sample(model, sched, shape, generators[i], null_class=null, **sampler))
    return torch.stack(out)


def judged(x: Tensor, side: int) -> Tensor:
    """Samples or real images (n, 1, side, side) in [−1, 1] as the yardstick reads them, in
    [0, 1]: 28x28 images for MNIST's classifier (14x14 ones upsampled bilinearly), flattened
    8x8 pixels for the pixel yardstick of scikit-learn's digits."""
    x = ((x + 1) / 2).clamp(0, 1)
    if side == 8:
        return x.flatten(1)
    if side != 28:
        x = F.interpolate(x, size=28, mode="bilinear", align_corners=False)
    return x


@dataclass
class DigitJudge:
    """The yardstick of topic 13 against held-out digits at the models' resolution, with its
    floor (the same scores between two disjoint halves of real held-out images, each of the
    generators' n) computed once."""

    judge: Any
    real: Tensor  # held-out images as the yardstick reads them
    labels: Tensor
    n: int
    floor: dict
    space: str

    def scores(self, generated: Tensor, side: int) -> dict:
        """Fréchet distance, precision, recall and class coverage of (n, 1, side, side)
        samples in [−1, 1]; NaN scores for a chain that produced non-finite values."""
        if not torch.isfinite(generated).all():
            return {"frechet_distance": np.nan, "precision": np.nan, "recall": np.nan}
        return self.judge.scores(self.real[: self.n], judged(generated, side))

    def prompted_share(self, generated: Tensor, side: int, y: Tensor) -> float:
        """The share of samples the yardstick's classifier assigns to their prompted class."""
        if not torch.isfinite(generated).all():
            return np.nan
        probs = self.judge.probabilities(judged(generated, side))
        return float((probs.argmax(1) == y.to(probs.device)).double().mean())


def digits(name: str, pool: int, n_test: int) -> Images:
    """The training and held-out digits of a diffusion lab (see `image_intensities`)."""
    return image_intensities(name, n_test=n_test, pool=pool)


def digit_judge(data: Images, n: int) -> DigitJudge:
    """A `DigitJudge` for `data`'s held-out images at n samples (at most half of them)."""
    real = judged(to_model(data.test, data.side), data.side)
    n = min(n, len(real) // 2)
    judge = yardstick_for(
        "mnist" if data.side in (14, 28) else "digits",
        real,
        judged(to_model(data.train, data.side), data.side),
        data.y_train,
    )
    floor = judge.scores(real[:n], real[n : 2 * n])
    return DigitJudge(judge, real, data.y_test, n, floor, judge.space)


SHARED_SETTINGS = ("dataset", "pool", "steps", "batch", "lr", "channels", "p_uncond", "T")
SHARED_FORMAT = 1  # raise when the training code changes what a key trains


def shared_denoisers(
    ctx: Any, cfg: Any, reps: Sequence[Replicate], data: Images
) -> tuple[Ensemble, FitResult, Tensor]:
    """The class-conditional U-Nets of the sampler, guidance and digits labs (member r =
    replicate r, linear schedule, labels dropped with probability ``cfg.p_uncond``): loaded
    from the run tree's shared entry when its key is identical, else trained with
    `fit_denoisers` and written there (`mlatlas.core.shared`). Returns the ensemble, the fit
    and the training images in [−1, 1]."""
    x = to_model(data.train, data.side)
    build = lambda: UNet(channels=tuple(cfg.channels), n_classes=10)  # noqa: E731
    ens = make_ensemble(lambda m: build(), len(reps), lambda m: reps[m].seed_torch("init"))
    digest = core_shared.tensor_digest({"x": x, "y": data.y_train})
    key = {
        "format": SHARED_FORMAT,
        "model": "class-conditional UNet (diffusion.train.fit_denoisers)",
        "settings": {k: cfg[k] for k in SHARED_SETTINGS},
        "data": digest,
        **core_shared.base_key(reps, ens, ctx.device, core_shared.code_digest(TRAINING_CODE)),
    }
    sched = SCHEDULES["linear"](cfg.T)
    ens, res = core_shared.shared_ensemble(
        ctx,
        name="unet",
        key=key,
        ens=ens,
        train=lambda: fit_denoisers(
            ctx,
            reps,
            x,
            data.y_train,
            build,
            schedules=[sched],
            steps=cfg.steps,
            batch=cfg.batch,
            lr=cfg.lr,
            p_uncond=cfg.p_uncond,
            desc="U-Nets",
        ),
        sharers="The samplers, guidance and mnist_digits labs share their U-Nets",
    )
    return ens, res, x


def unet_config(ctx: Any, **extra: Any) -> Any:
    """The shared U-Nets' settings per scale (smoke, default, full), with a lab's own: the
    three labs that read them must ask for the same ones, so they are written here once.
    Default: MNIST pooled to 14x14, widths (16, 32), 1,500 Adam steps of 64 images at 2e-3
    (3.2 minutes of training for five seeds on two cores), chosen on a pilot of replicates
    100-104 against training-set samples only."""
    return ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        pool=per_scale(1, 2, 1),
        seeds=per_scale(2, 5, 5),
        steps=per_scale(40, 1500, 20_000),
        batch=64,
        lr=per_scale(2e-3, 2e-3, 2e-4),
        channels=per_scale((8, 16), (16, 32), (32, 64, 128)),
        p_uncond=0.1,
        T=1000,
        n_test=per_scale(360, 2000, 10_000),
        **extra,
    )
