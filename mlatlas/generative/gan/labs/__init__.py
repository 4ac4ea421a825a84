"""Labs of topic 14 (GAN), one file each, in reading order:

saturation: the minimax generator loss gives almost no gradient early; the non-saturating one does.
mode_collapse: modes covered on the ring and the grid: the vanilla GAN, WGAN-GP and PacGAN.
dcgan_mnist: DCGAN on MNIST, its Fréchet distance over training beside the real-data floor.
instability: the discriminator's learning rate and steps per generator step, over seeds.
"""

# the import order is the labs' order
# isort: off
from mlatlas.generative.gan.labs import saturation  # noqa: F401
from mlatlas.generative.gan.labs import mode_collapse  # noqa: F401
from mlatlas.generative.gan.labs import dcgan_mnist  # noqa: F401
from mlatlas.generative.gan.labs import instability  # noqa: F401
# isort: on
