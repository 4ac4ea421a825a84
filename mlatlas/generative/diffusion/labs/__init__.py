"""Labs of topic 15 (diffusion), one file each, in reading order:

noise_schedules: linear against cosine: SNR curves, and sample quality at few sampling steps.
mnist_digits: class-conditional DDPM on MNIST, the prompted digit's share, the reverse chain.
samplers: DDPM's ancestral sampler against DDIM's deterministic one, quality against steps.
guidance: classifier-free guidance, the prompted digit's share against recall, across w.
score_langevin: denoising score matching; plain against annealed Langevin on a two-mode mixture.
"""

# the import order is the labs' order
# isort: off
from mlatlas.generative.diffusion.labs import noise_schedules  # noqa: F401
from mlatlas.generative.diffusion.labs import mnist_digits  # noqa: F401
from mlatlas.generative.diffusion.labs import samplers  # noqa: F401
from mlatlas.generative.diffusion.labs import guidance  # noqa: F401
from mlatlas.generative.diffusion.labs import score_langevin  # noqa: F401
# isort: on
