r"""Training a GAN with the core's `fit`: the game's losses as alternating updates.

One step of `fit` runs, in order, n_critic discriminator updates and one generator update
(Goodfellow et al. 2014, Algorithm 1: "k steps of D, one step of G"; WGAN-GP uses
n_critic = 5). `fit` is given the updates as sequences,

    fit(model, (opt_d,) * n_critic + (opt_g,), gan_losses(...), critic_batches(...), steps)

with ``model = nn.ModuleDict({"G": ..., "D": ...})``, so the progress bar, the logs, the
divergence records (a NaN in any update) and resuming from a checkpoint are the core's. Each
step's batch holds n_critic real minibatches, shape (B, n_critic, ...), and discriminator
update i reads column i, so every critic update sees fresh data as in Gulrajani et al.'s
Algorithm 1 (examples first: a data-parallel fit shards the batch along its first axis).
z and WGAN-GP's interpolation weights come from the generator `fit` owns (``noise``), so a
resumed run draws what the killed one would have.

The losses (`losses`): "minimax" and "nonsaturating" (Goodfellow et al. 2014) with D's
binary cross-entropy; "wgan-gp" (Gulrajani et al. 2017) with the critic loss plus the
gradient penalty. Packing (`pacgan`) is an option of every variant: D sees packs of m
samples, and the gradient penalty is taken per pack, the critic's actual input.

G and D may be `mlatlas.core.ensemble.Ensemble` s of R members (MLPs: BatchNorm and spectral
normalization write buffers in the forward pass, which would be lost under vmap, so
`train_gan` refuses them in an ensemble): the batch is then (R, B, n_critic, ...), each
member draws its own z, and every loss has one entry per member, so R seeds of one
configuration train in one fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.fitting import FitResult, LossFn
from mlatlas.core.train import batches_for_steps, fit
from mlatlas.generative.gan.losses import (
    critic_loss,
    discriminator_loss,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    gradient_penalty,
    interpolates,
    wgan_generator_loss,
)
from mlatlas.generative.gan.models import MLPDiscriminator, MLPGenerator
from mlatlas.generative.gan.pacgan import pack as pack_examples
from mlatlas.generative.gan.spectral_norm import SpectralNorm

LOSSES = ("minimax", "nonsaturating", "wgan-gp")
GENERATOR_LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "minimax": generator_loss_minimax,
    "nonsaturating": generator_loss_nonsaturating,
    "wgan-gp": wgan_generator_loss,
}


def gan(generator: nn.Module, discriminator: nn.Module) -> nn.ModuleDict:
    """The model `fit` trains: both players in one module, ``{"G": ..., "D": ...}``."""
    return nn.ModuleDict({"G": generator, "D": discriminator})


def mlp_gan_ensemble(
    size: int,
    seed_fn: Callable[[int, str], object],
    *,
    z_dim: int = 256,
    hidden: int = 128,
    pack: int = 1,
) -> nn.ModuleDict:
    """``gan(G, D)`` with G and D `Ensemble` s of `size` of Metz et al.'s MLPs (`models`); member
    r's G is built right after ``seed_fn(r, "G")`` and its D after ``seed_fn(r, "D")`` (e.g.
    ``lambda r, key: reps[r].seed_torch(key)``), so two arms seeded alike start from the same
    generators whatever their discriminators (a packed D has a wider input)."""

    def build(make: Callable[[], nn.Module], key: str) -> Ensemble:
        members = []
        for r in range(size):
            seed_fn(r, key)
            members.append(make())
        return Ensemble(members)

    return gan(
        build(lambda: MLPGenerator(z_dim=z_dim, hidden=hidden), "G"),
        build(lambda: MLPDiscriminator(in_dim=2 * pack, hidden=hidden), "D"),
    )


def _batch_dims(net: nn.Module) -> int:
    return 2 if isinstance(net, Ensemble) else 1  # an ensemble's inputs are (R, B, ...)


def _run(net: nn.Module, x: Tensor) -> Tensor:
    """A player on its input; an ensemble's member r on row r."""
    return net(x, per_member=True) if isinstance(net, Ensemble) else net(x)


def draw_z(
    batch_shape: Sequence[int], z_dim: int, noise: torch.Generator | None, device: torch.device
) -> Tensor:
    """z ~ N(0, I) of shape (*batch_shape, z_dim), drawn from `noise` on its own device."""
    gen_device = noise.device if noise is not None else device
    return torch.randn((*batch_shape, z_dim), generator=noise, device=gen_device).to(device)


@torch.no_grad()
def sample(
    generator: nn.Module, n: int, z_dim: int, noise: torch.Generator | None = None
) -> Tensor:
    """n samples of G in evaluation mode (BatchNorm's running statistics): (n, ...), or
    (R, n, ...) for an ensemble."""
    was_training = generator.training
    generator.eval()
    device = next(generator.parameters()).device
    lead = (generator.size, n) if isinstance(generator, Ensemble) else (n,)
    out = _run(generator, draw_z(lead, z_dim, noise, device))
    generator.train(was_training)
    return out


def gan_losses(
    loss: str = "nonsaturating",
    *,
    z_dim: int,
    n_critic: int = 1,
    pack: int = 1,
    gp_weight: float = 10.0,
) -> list[LossFn]:
    """`fit`'s loss functions for one GAN step: n_critic discriminator losses, then the
    generator's; each is ``loss_fn(model, batch, noise)`` on ``model = gan(G, D)``."""
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; known: {', '.join(LOSSES)}")
    if n_critic < 1 or pack < 1:
        raise ValueError("n_critic and pack are at least 1")

    def d_loss(model: nn.ModuleDict, real: Tensor, noise: torch.Generator | None) -> Tensor:
        g, d = model["G"], model["D"]
        bd = _batch_dims(d)
        with torch.no_grad():  # D's update: G is a fixed source of fakes
            fake = _run(g, draw_z(real.shape[:bd], z_dim, noise, real.device))
        real, fake = pack_examples(real, pack, bd), pack_examples(fake, pack, bd)
        real_scores, fake_scores = _run(d, real), _run(d, fake)
        if loss != "wgan-gp":
            return discriminator_loss(real_scores, fake_scores)
        # the critic's input is the pack: the segment and the gradient norm are the pack's
        x_hat = interpolates(real, fake, noise, bd)
        penalty = gradient_penalty(lambda x: _run(d, x), x_hat, gp_weight, bd)
        return critic_loss(real_scores, fake_scores) + penalty

    def critic_update(i: int) -> LossFn:
        def fn(model: nn.ModuleDict, batch: Tensor, noise: torch.Generator | None) -> Tensor:
            return d_loss(model, batch.select(_batch_dims(model["D"]), i), noise)

        return fn

    def g_loss(model: nn.ModuleDict, batch: Tensor, noise: torch.Generator | None) -> Tensor:
        g, d = model["G"], model["D"]
        bd = _batch_dims(g)
        # the batch gives only the number of examples: G's loss sees no real data
        fake = _run(g, draw_z(batch.shape[:bd], z_dim, noise, batch.device))
        return GENERATOR_LOSSES[loss](_run(d, pack_examples(fake, pack, _batch_dims(d))))

    return [critic_update(i) for i in range(n_critic)] + [g_loss]


def generator_gradient_norms(
    model: nn.ModuleDict, z: Tensor, losses: Sequence[str] = LOSSES[:2], pack: int = 1
) -> dict[str, Tensor]:
    """Per generator loss, the norm of its gradient in G's weights on the noise `z`, D fixed:
    a scalar, or one norm per member (R,) for an ensemble (z of shape (R, B, z_dim)).

    The losses share one forward pass; only the factor dL/dl that multiplies each fake's
    logit gradient differs (-sigma(l) for the minimax loss, -(1 - sigma(l)) for the
    non-saturating one, over the batch size), so the ratio of the norms is the ratio of those
    factors, weighted over the batch: what Goodfellow et al. (2014, section 3) argue."""
    g, d = model["G"], model["D"]
    params = [p for p in g.parameters() if p.requires_grad and not p.is_meta]  # not the template
    fake_logits = _run(d, pack_examples(_run(g, z), pack, _batch_dims(d)))
    lead = _batch_dims(g) - 1  # 1 for an ensemble's stacked (R, ...) weights, else 0
    out = {}
    for name in losses:
        grads = torch.autograd.grad(
            GENERATOR_LOSSES[name](fake_logits).sum(), params, retain_graph=True
        )
        squares = sum(gr.flatten(lead).pow(2).sum(-1) for gr in grads)
        out[name] = torch.as_tensor(squares).sqrt().detach()
    return out


def critic_batches(
    data: Tensor,
    batch_size: int,
    steps: int,
    rng: np.random.Generator | Sequence[np.random.Generator],
    n_critic: int = 1,
) -> Iterator[Tensor]:
    """`steps` batches of real examples, each (B, n_critic, ...): column i is critic update
    i's minibatch, reshuffled at epoch boundaries (`batches_for_steps`). With a sequence of R
    generators (one per ensemble member) each member draws its own: (R, B, n_critic, ...)."""
    rngs = [rng] if isinstance(rng, np.random.Generator) else list(rng)
    streams = [batches_for_steps(len(data), batch_size, steps * n_critic, r) for r in rngs]
    for _ in range(steps):
        members = [torch.stack([data[next(s)] for _ in range(n_critic)], 1) for s in streams]
        yield members[0] if isinstance(rng, np.random.Generator) else torch.stack(members)


def train_gan(
    model: nn.ModuleDict,
    data: Tensor,
    steps: int,
    *,
    z_dim: int,
    rng: np.random.Generator | Sequence[np.random.Generator],
    noise: torch.Generator,
    loss: str = "nonsaturating",
    n_critic: int = 1,
    pack: int = 1,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    gp_weight: float = 10.0,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
    **fit_options: Any,
) -> FitResult:
    """Train ``model = gan(G, D)`` on the rows of `data` for `steps` generator updates.

    Adam for both players unless `optimizers` = (opt_d, opt_g) is given; the defaults are
    DCGAN's (lr 2e-4, beta1 0.5). Gulrajani et al. train WGAN-GP with lr 1e-4, betas (0, 0.9)
    or (0.5, 0.9) and n_critic = 5. `rng` draws the minibatches (one per member for an
    ensemble), `noise` every z. ``fit_options`` go to `fit` (ctx, desc, log_every, evaluate,
    eval_every, eval_last, stop). ``FitResult.losses`` has shape (steps, n_critic + 1[, R]):
    the critic updates' losses, then the generator's (`split_losses`)."""
    members = model["G"].size if isinstance(model["G"], Ensemble) else None
    if (members is None) != isinstance(rng, np.random.Generator) or (
        members is not None and len(rng) != members
    ):
        raise ValueError("rng: one NumPy generator per member for an ensemble, else just one")
    for name in ("G", "D"):
        if isinstance(model[name], Ensemble) and _updates_buffers(model[name].base):
            raise ValueError(f"{name}: BatchNorm and spectral norm cannot train in an ensemble")
    if batch_size % pack:
        raise ValueError(f"batch_size {batch_size} is not a multiple of pack {pack}")
    if optimizers is None:
        optimizers = (
            torch.optim.Adam(model["D"].parameters(), lr=lr, betas=betas),
            torch.optim.Adam(model["G"].parameters(), lr=lr, betas=betas),
        )
    opt_d, opt_g = optimizers
    losses = gan_losses(loss, z_dim=z_dim, n_critic=n_critic, pack=pack, gp_weight=gp_weight)
    return fit(
        model,
        (opt_d,) * n_critic + (opt_g,),
        losses,
        critic_batches(data, batch_size, steps, rng, n_critic),
        steps,
        noise=noise,
        **fit_options,
    )


def _updates_buffers(net: nn.Module) -> bool:
    """Whether a forward pass writes buffers: under vmap those writes would be lost silently
    (spectral norm's u and v would never move from their first value)."""
    return any(
        isinstance(m, (SpectralNorm, nn.modules.batchnorm._BatchNorm)) for m in net.modules()
    )


def split_losses(result: FitResult, n_critic: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(critic losses (steps, n_critic[, R]), generator losses (steps[, R])) of a `train_gan`."""
    return result.losses[:, :n_critic], result.losses[:, n_critic]
