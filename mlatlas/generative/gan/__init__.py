r"""Topic 14, generative adversarial networks.

A generator $G$ maps noise $z \sim \mathcal{N}(0, I)$ to samples; a discriminator $D$ learns
to tell them from real data, and $G$ learns to fool it (Goodfellow et al. 2014):

$$\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p}[\log D(x)]
 + \mathbb{E}_{z}[\log(1 - D(G(z)))] .$$

For a fixed $G$ with sample density $q$ the best discriminator is $D^*(x) = p(x) / (p(x) +
q(x))$, and then $V(D^*, G) = 2\,\mathrm{JSD}(p \,\|\, q) - \log 4$: the game's equilibrium,
where neither player gains by moving alone, is $q = p$ with $D = 1/2$ everywhere. Training
does not solve for it; it takes alternating gradient steps (`train`: n_critic steps of $D$,
one of $G$), and gradient play on a game need not converge: on $\min_x \max_y xy$ it circles
the equilibrium, and on data the players can oscillate, or $G$ can put all its mass on the
few modes $D$ currently accepts and hop between them (**mode collapse**).

Much of GAN engineering stabilises that game:

- **the non-saturating loss** (Goodfellow et al. 2014): $G$ maximises $\log D(G(z))$ instead
  of minimising $\log(1 - D(G(z)))$; same fixed point, but a strong gradient exactly when $D$
  rejects the fakes, where the minimax loss is flat (`losses`);
- **Wasserstein GANs with a gradient penalty** (Arjovsky et al. 2017; Gulrajani et al. 2017):
  a critic estimates the Earth-mover distance, kept 1-Lipschitz by
  $\lambda\,\mathbb{E}[(\lVert\nabla_{\hat x} f(\hat x)\rVert_2 - 1)^2]$ at random
  interpolates between real and fake samples;
- **spectral normalization** (Miyato et al. 2018): every weight of $D$ divided by its largest
  singular value, found by one power iteration per step (`spectral_norm`);
- **packing** (PacGAN, Lin et al. 2018): $D$ judges $m$ samples at once, which exposes a
  generator whose samples all come from the same few modes (`pacgan`);
- **DCGAN's architecture** (Radford et al. 2016): strided and transposed convolutions,
  BatchNorm, LeakyReLU in $D$ (`models`). Progressive growing (Karras et al. 2018) and
  style-based generators (Karras et al. 2019) carry the same game to megapixel images.

Collapse is measured where the modes are known: on a ring of 8 and a grid of 25 Gaussians
(`mlatlas.core.data.synthetic`), each sample is assigned to its nearest mode, counted as high
quality within three standard deviations of it, and a mode as covered when it has a
high-quality sample (VEEGAN's statistics, Srivastava et al. 2017; `modes`). On images the
yardstick of topic 13 scores samples in the features of an MNIST classifier.

Every piece is written from its equations and checked against a reference in
``tests/test_gan.py``: the losses against binary cross-entropy, the gradient penalty against
a loop over single examples, spectral normalization against PyTorch's, the two generator
losses' gradients against their closed forms. The labs follow.
"""

from mlatlas.generative.gan.losses import (
    critic_loss,
    discriminator_loss,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    gradient_penalty,
    interpolates,
    wgan_generator_loss,
)
from mlatlas.generative.gan.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    dcgan_init_,
)
from mlatlas.generative.gan.modes import (
    MIXTURES,
    VEEGAN_SAMPLES,
    Mixture,
    ModeCoverage,
    member_coverage,
    mode_coverage,
)
from mlatlas.generative.gan.pacgan import pack
from mlatlas.generative.gan.spectral_norm import SpectralNorm, power_iteration, spectral_norm
from mlatlas.generative.gan.train import (
    LOSSES,
    critic_batches,
    draw_z,
    gan,
    gan_losses,
    generator_gradient_norms,
    mlp_gan_ensemble,
    sample,
    split_losses,
    train_gan,
)

__all__ = [
    "LOSSES",
    "MIXTURES",
    "VEEGAN_SAMPLES",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "Mixture",
    "ModeCoverage",
    "SpectralNorm",
    "critic_batches",
    "critic_loss",
    "dcgan_init_",
    "discriminator_loss",
    "draw_z",
    "gan",
    "gan_losses",
    "generator_gradient_norms",
    "generator_loss_minimax",
    "generator_loss_nonsaturating",
    "gradient_penalty",
    "interpolates",
    "member_coverage",
    "mlp_gan_ensemble",
    "mode_coverage",
    "pack",
    "power_iteration",
    "sample",
    "spectral_norm",
    "split_losses",
    "train_gan",
    "wgan_generator_loss",
]
