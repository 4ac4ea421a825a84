r"""Training and scoring helpers the VAE labs share: binarized MNIST, the objective for an
ensemble of VAEs, bounds on held-out data, active units.

**Dynamic binarization** (Salakhutdinov & Murray 2008; Burda et al. 2015): every time a training
image is used, each pixel is drawn anew as $x_i \sim \mathrm{Bernoulli}(\text{intensity}_i)$, from
the generator the training loop owns; the test images are binarized once, with the project's test
seed, so every model is scored on the same binary digits.

**Active units** (Burda et al. 2015, section 5.2): a latent dimension $u$ is active when
$A_u = \mathrm{Cov}_x\big(\mathbb E_{q(u \mid x)}[u]\big) > 10^{-2}$: its posterior mean moves with
the input. A collapsed unit has $q(u \mid x) \approx p(u)$ for every $x$, and KL $\approx 0$.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlatlas.core.data import load_digits, load_mnist
from mlatlas.core.data.registry import REGISTRY
from mlatlas.core.ensemble import Ensemble, make_ensemble
from mlatlas.core.figures import image_grid
from mlatlas.core.fitting import FitContext, FitResult
from mlatlas.core.seeding import Replicate, fixed_generator, fixed_rng
from mlatlas.core.train import fit
from mlatlas.generative.vae.elbo import gaussian_kl, iwae_bound, log_importance_weights

ACTIVE = 1e-2  # Burda et al.'s threshold on Cov_x(E_q[u])


@dataclass
class Images:
    """Flattened images as intensities in [0, 1], with labels and the data record."""

    train: Tensor
    y_train: Tensor
    test: Tensor
    y_test: Tensor
    side: int
    record: dict


def image_intensities(
    name: str, n_train: int | None = None, n_test: int | None = None, pool: int = 1
) -> Images:
    """MNIST (28x28) or scikit-learn's digits (8x8; a fixed 75/25 split) as intensities in
    [0, 1]; n_train / n_test images are a fixed random subset (the same whatever the run
    seed: MNIST's test file is ordered, its first 5,000 digits written by other hands than its
    last 5,000); ``pool`` > 1 averages pool x pool blocks (MNIST at 14x14 with pool = 2)."""
    if name == "mnist":
        (xtr, ytr), (xte, yte) = load_mnist("train"), load_mnist("test")
        xtr, xte, side, rec = xtr / 255.0, xte / 255.0, 28, REGISTRY["mnist"].record()
    elif name == "digits":
        x, y = load_digits()
        order = fixed_rng("digits-split").permutation(len(x))
        cut = int(0.75 * len(x))
        xtr, ytr, xte, yte = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
        xtr, xte, side, rec = xtr / 16.0, xte / 16.0, 8, {"name": "sklearn-digits"}
    else:
        raise KeyError(f"unknown image set {name!r}; known: mnist, digits")

    def subset(n: int | None, size: int, split: str) -> np.ndarray:
        if n is None or n >= size:
            return np.arange(size)
        return np.sort(fixed_rng("subset", name, split).permutation(size)[:n])

    keep_tr, keep_te = subset(n_train, len(xtr), "train"), subset(n_test, len(xte), "test")
    xtr, ytr, xte, yte = xtr[keep_tr], ytr[keep_tr], xte[keep_te], yte[keep_te]

    def flat(a: np.ndarray) -> Tensor:
        t = torch.from_numpy(np.array(a, dtype=np.float32)).reshape(len(a), 1, side, side)
        if pool > 1:
            t = torch.nn.functional.avg_pool2d(t, pool)
        return t.flatten(1)

    xtr, xte = flat(xtr), flat(xte)
    side //= pool
    rec = {**rec, "n_train": len(xtr), "n_test": len(xte), "binarized": "dynamic (test: fixed)"}
    if pool > 1:
        rec["pooled_to"] = side
    ytr, yte = torch.as_tensor(np.asarray(ytr)), torch.as_tensor(np.asarray(yte))
    return Images(xtr, ytr, xte, yte, side, rec)


def binarize(p: Tensor, generator: torch.Generator) -> Tensor:
    """x_i ~ Bernoulli(p_i), one draw per pixel from `generator`."""
    return (torch.rand(p.shape, generator=generator, device=p.device) < p).to(p.dtype)


def fixed_binarization(p: Tensor) -> Tensor:
    """The test images' one binarization, drawn with the project's test seed."""
    return binarize(p, fixed_generator("binarize"))


def step_batches(streams: Sequence[Callable[[], Tensor]], steps: int):
    """(indices (R, B), step) for `fit`: member r's minibatch from ``streams[r]()``. The step
    rides in the batch, so a warm-up schedule inside the loss resumes where it stopped."""
    for t in range(steps):
        yield torch.stack([s() for s in streams]), torch.tensor(t)


def vae_objective(
    data: Tensor,
    z_dim: int,
    *,
    k: int = 1,
    iwae: bool = False,
    beta: Tensor | float = 1.0,
    warmup: Tensor | float = 0.0,
    free_bits: Tensor | float = 0.0,
    arms: int = 1,
) -> Callable[[Ensemble, tuple[Tensor, Tensor], torch.Generator], Tensor]:
    """loss_fn(ens, (idx, t), noise) for `fit`: each member's negative objective on its own
    dynamically binarized minibatch ``data[idx[r]]``, shape (R,).

    Per member (tensors of shape (R,), or one number for all): ``beta`` weighs the KL (beta-VAE);
    ``warmup`` > 0 ramps that weight linearly from 0 over as many steps; ``free_bits`` > 0 counts
    each latent dimension's batch-mean KL as at least that many nats. With ``iwae`` the loss is
    -L_k (Burda et al. 2015), otherwise the ELBO with the reconstruction term averaged over
    ``k`` samples. With ``arms`` > 1 the R = arms * n members are arms of n replicates
    (member a * n + r): the arms of a replicate get the same binarized pixels and the same eps
    (common random numbers) whenever they get the same minibatch indices.
    """
    shaped = any(isinstance(v, Tensor) or v != d for v, d in ((beta, 1.0), (warmup, 0.0)))
    if iwae and (shaped or isinstance(free_bits, Tensor) or free_bits != 0.0):
        raise ValueError("the IWAE objective has no beta, warm-up or free bits")

    def loss_fn(ens: Ensemble, batch: tuple[Tensor, Tensor], noise: torch.Generator) -> Tensor:
        idx, t = batch
        p = data[idx]
        n = p.shape[0] // arms  # replicates: one draw each, repeated over the arms
        u = torch.rand((n, *p.shape[1:]), generator=noise, device=p.device).repeat(arms, 1, 1)
        x = (u < p).to(p.dtype)
        eps_shape = (n, idx.shape[1], k, z_dim) if (k > 1 or iwae) else (n, idx.shape[1], z_dim)
        eps = torch.randn(eps_shape, generator=noise, device=x.device)
        eps = eps.repeat(arms, *([1] * (eps.dim() - 1)))
        log_px, z, mu, logvar, _ = ens.call(lambda f, a, e: f(a, e), x, eps, per_member=True)
        if iwae:
            return -iwae_bound(log_importance_weights(log_px, z, mu, logvar)).mean(-1)
        rec = log_px.mean(-1) if log_px.dim() == 3 else log_px  # (R, B)
        kl = gaussian_kl(mu, logvar)  # (R, B, d)
        w = torch.as_tensor(warmup, dtype=x.dtype, device=x.device)
        ramp = torch.where(w > 0, (t.to(x.dtype) / w.clamp(min=1)).clamp(max=1.0), 1.0)
        b = torch.as_tensor(beta, dtype=x.dtype, device=x.device) * ramp
        lam = torch.as_tensor(free_bits, dtype=x.dtype, device=x.device)
        kl_term = kl.mean(1).clamp(min=lam.reshape(-1, 1)).sum(-1)  # (R,): free bits per dim
        return -(rec.mean(1) - b * kl_term)

    return loss_fn


@torch.no_grad()
def member_bounds(
    ens: Ensemble,
    x: Tensor,
    ks: Sequence[int],
    generator: torch.Generator,
    chunk: int = 8,
    draws: int = 100,
) -> dict[int, Tensor]:
    """Per member and test example, the importance-weighted bounds L_k (nats), shape (R, N),
    for each k in `ks`. Each k gets samples of its own, max(k, draws) of them rounded up to a
    multiple of k, and L_k is the mean over their disjoint groups of k. Own samples, not
    nested groups of one draw: nested groups would order the L_k by Jensen's inequality on
    every image, whatever the model, and the comparison would say nothing."""
    sizes = {k: -(-max(k, draws) // k) * k for k in ks}
    total = sum(sizes.values())
    out: dict[int, list[Tensor]] = {k: [] for k in ks}
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk].expand(ens.size, -1, -1)
        eps = torch.randn(
            (ens.size, len(xb[0]), total, ens.base.z_dim), generator=generator, device=x.device
        )
        log_px, z, mu, logvar, _ = ens.call(lambda f, a, e: f(a, e), xb, eps, per_member=True)
        log_w = log_importance_weights(log_px, z, mu, logvar)  # (R, b, total)
        for k, part in zip(ks, log_w.split(list(sizes.values()), dim=-1), strict=True):
            groups = part.reshape(*part.shape[:-1], sizes[k] // k, k)
            out[k].append(iwae_bound(groups).mean(-1))
    return {k: torch.cat(v, dim=1) for k, v in out.items()}


@torch.no_grad()
def member_posteriors(ens: Ensemble, x: Tensor, chunk: int = 2000) -> tuple[Tensor, Tensor]:
    """Every member's q(z | x) parameters (mu, logvar) on shared inputs x, each (R, N, d)."""
    mus, logvars = [], []
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        eps = torch.zeros(len(xb), ens.base.z_dim, device=x.device)  # unused: mu, logvar only
        _, _, mu, logvar, _ = ens.call(lambda f, a, e: f(a, e), xb, eps)
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus, 1), torch.cat(logvars, 1)


def active_units(mu: Tensor, threshold: float = ACTIVE) -> Tensor:
    """Number of active latent units: Cov_x(E_q[u]) > threshold, from posterior means of shape
    (..., N, d); returns shape (...)."""
    return (mu.var(dim=-2, unbiased=True) > threshold).sum(-1)


def kl_per_unit(mu: Tensor, logvar: Tensor) -> Tensor:
    """Mean KL(q(u | x) || p(u)) over examples, per latent unit: shape (..., d)."""
    return gaussian_kl(mu, logvar).mean(-2)


def fit_vaes(
    ctx: FitContext | None,
    reps: Sequence[Replicate],
    data: Tensor,
    build: Callable[[], nn.Module],
    *,
    steps: int,
    batch: int,
    lr: float,
    arms: int = 1,
    desc: str = "vae",
    schedule: Callable[[int], float] | None = None,
    **objective: Any,
) -> tuple[Ensemble, FitResult]:
    """Train ``arms * len(reps)`` VAEs as one ensemble with Adam: member ``a * R + r`` is arm a
    of replicate r. The arms of a replicate start from the same weights (``build()`` after
    ``reps[r].seed_torch("init")``) and see the same minibatches, so arms are paired by seed;
    per-member settings (``beta``, ``warmup``, ``free_bits``) are passed through to
    `vae_objective` as tensors of shape (arms * R,). The binarization and eps come from one
    generator the fit owns, and a replicate's arms share them; ``schedule(t)`` sets the
    learning rate of step t."""
    n = len(reps)
    ens = make_ensemble(lambda m: build(), arms * n, lambda m: reps[m % n].seed_torch("init"))
    z_dim = ens.base.z_dim
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    gens = [reps[m % n].generator("batches") for m in range(arms * n)]
    streams = [lambda g=g: torch.randint(0, len(data), (batch,), generator=g) for g in gens]
    noise = reps[0].generator("noise", desc)
    res = fit(
        ens,
        opt,
        vae_objective(data, z_dim, arms=arms, **objective),
        step_batches(streams, steps),
        steps,
        ctx=ctx,
        desc=desc,
        log_every=max(1, steps // 50),
        noise=noise,
        schedule=schedule,
    )
    return ens, res


@torch.no_grad()
def member_rate_distortion(
    ens: Ensemble, x: Tensor, generator: torch.Generator, chunk: int = 1000
) -> tuple[Tensor, Tensor]:
    """Per member, the rate E_x KL(q(z | x) || p(z)) and the distortion E_x E_q[-log p(x | z)]
    (one z per image), both in nats per image, on shared inputs x: two tensors of shape (R,)."""
    rate = torch.zeros(ens.size, device=x.device)
    dist = torch.zeros(ens.size, device=x.device)
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk].expand(ens.size, -1, -1)
        eps = torch.randn(
            (ens.size, xb.shape[1], ens.base.z_dim), generator=generator, device=x.device
        )
        log_px, _, mu, logvar, _ = ens.call(lambda f, a, e: f(a, e), xb, eps, per_member=True)
        rate += gaussian_kl(mu, logvar).sum((1, 2))
        dist -= log_px.sum(1)
    return (rate / len(x)).cpu(), (dist / len(x)).cpu()


def draw_training_and_samples(
    ax_curve: Any,
    ax_grid: Any,
    res: FitResult,
    model: nn.Module,
    side: int,
    generator: torch.Generator,
    n: int = 32,
    ylabel: str = "-ELBO on the minibatch (nats)",
) -> None:
    """Two panels every VAE lab draws: each member's training loss against the step (log
    scale), and a grid of `n` prior samples E[x | z] of `model`."""
    steps = np.arange(1, len(res.losses) + 1)
    ax_curve.plot(steps, res.losses, lw=0.6, alpha=0.7)
    ax_curve.set(xlabel="step", ylabel=ylabel, title="training, one curve per seed")
    ax_curve.set_yscale("log")
    image_grid(
        ax_grid, model.sample(n, generator).numpy(), side, 8, "prior samples, seed 0 (E[x|z])"
    )
