r"""Topic 13, variational autoencoders.

A VAE (Kingma & Welling 2014; Rezende et al. 2014) is a latent-variable model
$p_\theta(x, z) = p_\theta(x \mid z)\,p(z)$ fitted together with an encoder
$q_\phi(z \mid x)$ by maximizing the evidence lower bound

$$\log p_\theta(x) \ge \mathbb E_{q_\phi(z \mid x)}[\log p_\theta(x \mid z)]
  - \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z)).$$

The first term rewards reconstruction (distortion), the second keeps each posterior close to
the prior (rate), so that decoding prior samples gives new data. Sampling $z$ as
$\mu + \sigma \odot \varepsilon$ (the reparameterization trick) makes the bound
differentiable in $\phi$; the importance-weighted bound (Burda et al. 2015) tightens it with
$k$ samples; weighting the KL by $\beta$ (Higgins et al. 2017) moves along the rate–distortion
curve (Alemi et al. 2018); a decoder strong enough to ignore $z$ collapses the posterior to
the prior, which KL warm-up and free bits resist.

Code: `elbo` (the bound, the analytic KL, IWAE, free bits, warm-up), `model` (Gaussian encoder,
Bernoulli and Gaussian decoders, the VAE), `made` (an autoregressive decoder), `estimators`
(reparameterization and score-function gradients), `train` (binarized MNIST, the ensemble
objective, bounds and active units), and `yardstick`, the sample-quality yardstick topics 13-15
share: an MNIST classifier the project trains once and caches, whose penultimate features give
a Fréchet distance and k-NN precision and recall (`mlatlas.core.sample_quality`), beside the
same scores between two halves of the real test images (the floor).
"""

from mlatlas.generative.vae.elbo import (
    bernoulli_log_likelihood,
    elbo,
    free_bits_kl,
    gaussian_kl,
    iwae_bound,
    kl_warmup,
    log_importance_weights,
    log_normal,
    reparameterize,
)
from mlatlas.generative.vae.estimators import (
    reparameterization_surrogate,
    score_function_surrogate,
)
from mlatlas.generative.vae.made import MADEDecoder
from mlatlas.generative.vae.model import VAE, BernoulliDecoder, GaussianDecoder, GaussianEncoder
from mlatlas.generative.vae.train import (
    Images,
    active_units,
    binarize,
    fit_vaes,
    fixed_binarization,
    image_intensities,
    kl_per_unit,
    member_bounds,
    member_posteriors,
    member_rate_distortion,
    step_batches,
    vae_objective,
)
from mlatlas.generative.vae.yardstick import (
    PixelYardstick,
    Yardstick,
    YardstickNet,
    load_yardstick,
    yardstick_for,
)

__all__ = [
    "VAE",
    "BernoulliDecoder",
    "GaussianDecoder",
    "GaussianEncoder",
    "Images",
    "MADEDecoder",
    "PixelYardstick",
    "Yardstick",
    "YardstickNet",
    "active_units",
    "bernoulli_log_likelihood",
    "binarize",
    "elbo",
    "fit_vaes",
    "fixed_binarization",
    "free_bits_kl",
    "gaussian_kl",
    "image_intensities",
    "iwae_bound",
    "kl_per_unit",
    "kl_warmup",
    "load_yardstick",
    "log_importance_weights",
    "log_normal",
    "member_bounds",
    "member_posteriors",
    "member_rate_distortion",
    "reparameterization_surrogate",
    "reparameterize",
    "score_function_surrogate",
    "step_batches",
    "vae_objective",
    "yardstick_for",
]
