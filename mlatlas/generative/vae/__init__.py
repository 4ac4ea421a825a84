r"""Topic 13, variational autoencoders.

So far this package holds the sample-quality yardstick that topics 13-15 share (`yardstick`):
an MNIST classifier the project trains once and caches, whose penultimate features give a
Fréchet distance and k-NN precision and recall (`mlatlas.core.sample_quality`), beside the
same scores between two disjoint halves of the real test images (the floor). The VAE itself
(encoder, decoders, ELBO, IWAE) and the labs follow.
"""

from mlatlas.generative.vae.yardstick import Yardstick, YardstickNet, load_yardstick

__all__ = ["Yardstick", "YardstickNet", "load_yardstick"]
