r"""The losses of the GAN game, from the discriminator's logits.

The discriminator outputs a logit $\ell(x)$ and $D(x) = \sigma(\ell(x))$ is its probability
that $x$ is real. Goodfellow et al. (2014, "Generative adversarial nets") set the game

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

so the discriminator minimises  L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]  (binary
cross-entropy with real = 1, fake = 0), and the generator, in the game as written
(**minimax**, "saturating"), minimises  E_z[log(1 - D(G(z)))].  Early in training D rejects
every fake, D(G(z)) ~ 0, and that loss is flat there: its derivative in the logit is
-D(G(z)). The same paper proposes the **non-saturating** loss instead, G maximises
E_z[log D(G(z))], i.e. minimises -E_z[log D(G(z))], whose derivative in the logit is
-(1 - D(G(z))) ~ -1 exactly where the other vanishes; both push D(G(z)) toward 1 and share
the game's fixed point.

Written with softplus, log sigma(l) = -softplus(-l) and log(1 - sigma(l)) = -softplus(l), no
probability is ever formed, so a confident logit (|l| ~ 100, where sigma rounds to 0 or 1 and
log would give -inf) still has a finite loss and gradient.

The **Wasserstein GAN** (Arjovsky et al. 2017) replaces the classifier by a critic f whose
value estimates the Earth-mover distance W(P_r, P_g) = sup_{||f||_L <= 1} E_r[f] - E_g[f]:
the critic minimises E_z[f(G(z))] - E_x[f(x)] and the generator minimises -E_z[f(G(z))].
**WGAN-GP** (Gulrajani et al. 2017, "Improved training of Wasserstein GANs") keeps f
1-Lipschitz by a penalty on its gradient norm at random interpolates between real and fake:

    L_f = E[f(x~)] - E[f(x)] + lambda E_{x^}[(||grad_{x^} f(x^)||_2 - 1)^2],
    x^ = eps x + (1 - eps) x~,  eps ~ U[0, 1],  lambda = 10.

The norm is per example, over all of its dimensions (pixels and channels of an image), and
the penalty is built with create_graph=True so that its own gradient reaches f's weights.

Every loss is a mean over the last axis of its logits: logits of shape (B,) give a scalar,
logits of shape (R, B) from an R-member ensemble (`mlatlas.core.ensemble`) give one loss per
member, which is what `fit` trains.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)]."""
    return F.softplus(-real_logits).mean(-1) + F.softplus(fake_logits).mean(-1)


def generator_loss_minimax(fake_logits: Tensor) -> Tensor:
    """The saturating generator loss of the game itself: E[log(1 - D(G(z)))] =
    E[logsigmoid(-l)]. Its gradient in l is -sigma(l): nothing when D rejects the fakes."""
    return F.logsigmoid(-fake_logits).mean(-1)


def generator_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """-E[log D(G(z))] = E[softplus(-l)]; gradient in l is -(1 - sigma(l)), large exactly
    where the minimax loss saturates."""
    return F.softplus(-fake_logits).mean(-1)


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The WGAN critic's loss E[f(G(z))] - E[f(x)]: its negative estimates W(P_r, P_g)."""
    return fake_scores.mean(-1) - real_scores.mean(-1)


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """-E[f(G(z))]: the generator lowers the critic's estimate of the distance."""
    return -fake_scores.mean(-1)


def interpolates(
    real: Tensor, fake: Tensor, noise: torch.Generator | None = None, batch_dims: int = 1
) -> Tensor:
    """x^ = eps x + (1 - eps) x~ with one eps ~ U[0, 1] per example: uniform on the segment
    between a real and a fake example (Gulrajani et al. 2017, Algorithm 1). The first
    `batch_dims` axes index examples (2 for an ensemble's (R, B, ...))."""
    shape = (*real.shape[:batch_dims], *([1] * (real.dim() - batch_dims)))
    device = noise.device if noise is not None else real.device
    eps = torch.rand(shape, generator=noise, device=device, dtype=real.dtype).to(real.device)
    return eps * real.detach() + (1 - eps) * fake.detach()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], x_hat: Tensor, lam: float = 10.0, batch_dims: int = 1
) -> Tensor:
    """lambda * E[(||grad_x f(x^)||_2 - 1)^2], the norm per example over all non-batch axes.

    One backward pass of sum_i f(x^_i) gives every example's own gradient at once, because
    f(x^_i) depends on x^_i alone; a critic that mixes examples (BatchNorm) breaks this, which
    is why Gulrajani et al. use none in the critic."""
    x_hat = x_hat.detach().requires_grad_(True)
    scores = critic(x_hat)
    # create_graph: the penalty is a function of the critic's weights through this gradient
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.flatten(batch_dims).norm(dim=-1)
    return lam * ((norm - 1) ** 2).mean(-1)
