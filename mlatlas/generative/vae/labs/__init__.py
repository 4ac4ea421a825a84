"""Labs of topic 13 (VAE), one file each, in reading order:

gradient_variance: the reparameterization gradient against the score function's, on one encoder.
iwae_bound: L_k for k = 1 ... 1000 on binarized MNIST; the test NLL beside Burda et al. 2015.
rate_distortion: beta moves the VAE along the rate-distortion curve; what it does to samples.
posterior_collapse: an autoregressive decoder switches z off; KL warm-up and free bits resist.
latent_space: a 2-D latent manifold; latent interpolations against pixel cross-fades.
"""

# the import order is the labs' order
# isort: off
from mlatlas.generative.vae.labs import gradient_variance  # noqa: F401
from mlatlas.generative.vae.labs import iwae_bound  # noqa: F401
from mlatlas.generative.vae.labs import rate_distortion  # noqa: F401
from mlatlas.generative.vae.labs import posterior_collapse  # noqa: F401
from mlatlas.generative.vae.labs import latent_space  # noqa: F401
# isort: on
