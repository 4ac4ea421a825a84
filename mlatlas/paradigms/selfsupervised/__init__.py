r"""Topic 10, self-supervised learning.

A pretext task makes labels from the data itself, and what it forces the network to notice
decides how useful the learned representation $h = f(x)$ is later. Three families, on one
tiny vision transformer (topic 7):

* **contrastive** — SimCLR (Chen et al. 2020): two random views of each image, a projection
  $z = g(h)$ and the NT-Xent loss of topic 3,
  $\ell_{i,j} = -\log \frac{e^{\mathrm{sim}(z_i,z_j)/\tau}}
  {\sum_{k\ne i} e^{\mathrm{sim}(z_i,z_k)/\tau}}$:
  pull the views of one image together, push the other $2N-2$ away. The augmentations
  (random resized crop, affine, noise, cutout; `augment`) decide which differences the
  representation learns to ignore.
* **predictive** — rotation prediction (Gidaris et al. 2018): name which of four quarter turns
  was applied.
* **generative** — the masked autoencoder (He et al. 2021): hide 75% of the patches,
  reconstruct their pixels from the rest, $\mathcal{L} = \frac{1}{|M|}\sum_{i\in M}
  \lVert \hat{x}_i - \tilde{x}_i\rVert^2 / P$.

Quality is measured as the field measures it: a linear probe (logistic regression on frozen
features), its accuracy with few labels, and the alignment and uniformity of the normalised
features (Wang & Isola 2020),
$\mathcal{L}_{\mathrm{align}} = \mathbb{E}\lVert f(x)-f(x^+)\rVert^2$,
$\mathcal{L}_{\mathrm{uniform}} = \log \mathbb{E}\, e^{-2\lVert f(x)-f(y)\rVert^2}$.

The labs measure on MNIST and Fashion-MNIST: the probe accuracy each pretext gives the same
encoder against a random and a supervised one; how much of that survives with 1% and 10% of
the labels; which augmentation SimCLR cannot do without; and whether alignment and uniformity
track probe accuracy across temperatures and training.
"""

from mlatlas.paradigms.selfsupervised.augment import (
    AUGMENTATIONS,
    Augment,
    affine_theta,
    compose,
    crop_theta,
    cutout,
    gaussian_noise,
    identity_theta,
    warp,
)
from mlatlas.paradigms.selfsupervised.encoders import ViTEncoder, WithHead
from mlatlas.paradigms.selfsupervised.mae import (
    MAE,
    masked_mse,
    normalized_patches,
    random_masking,
    take,
    unshuffle,
)
from mlatlas.paradigms.selfsupervised.metrics import alignment, uniformity
from mlatlas.paradigms.selfsupervised.probe import fit_probe, probe_accuracy, standardize
from mlatlas.paradigms.selfsupervised.rotation import rotate90, rotation_batch, rotation_loss
from mlatlas.paradigms.selfsupervised.simclr import projection_head, simclr_loss, simclr_model

__all__ = [
    "AUGMENTATIONS",
    "MAE",
    "Augment",
    "ViTEncoder",
    "WithHead",
    "affine_theta",
    "alignment",
    "compose",
    "crop_theta",
    "cutout",
    "fit_probe",
    "gaussian_noise",
    "identity_theta",
    "masked_mse",
    "normalized_patches",
    "probe_accuracy",
    "projection_head",
    "random_masking",
    "rotate90",
    "rotation_batch",
    "rotation_loss",
    "simclr_loss",
    "simclr_model",
    "standardize",
    "take",
    "uniformity",
    "unshuffle",
    "warp",
]
