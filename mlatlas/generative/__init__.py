"""Section 4, generative models: variational autoencoders (13), GANs (14), diffusion models (15)."""
