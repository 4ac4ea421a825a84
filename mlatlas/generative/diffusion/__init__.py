r"""Topic 15, diffusion models.

Generate by learning to remove noise. A fixed **forward process** destroys data in $T$ small
Gaussian steps, $q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$,
until nothing is left but $\mathcal{N}(0, I)$. Because every step is Gaussian, any step is
one draw away from the data (Ho et al. 2020):

$$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\qquad
\bar\alpha_t = \prod_{s\le t}(1-\beta_s),\qquad \epsilon \sim \mathcal{N}(0, I).$$

A network $\epsilon_\theta(x_t, t)$ learns to predict the noise, by plain regression at a
random step, $L_\text{simple} = \mathbb{E}\,\lVert \epsilon - \epsilon_\theta(x_t, t)
\rVert^2$. Predicting the noise is learning the **score**: $\nabla_{x_t}\log q(x_t) \approx
-\epsilon_\theta / \sqrt{1 - \bar\alpha_t}$, the same object that denoising score matching
and Langevin dynamics use (Vincent 2011; Song & Ermon 2019). The **reverse process** starts
from noise and steps back, each step a Gaussian whose mean comes from the network's
estimate of the clean data: DDPM's ancestral step (1000 steps), or DDIM's deterministic one,
which uses the same network and skips most of the steps (Song et al. 2021).

The **noise schedule** sets how fast signal is destroyed: the linear $\beta_t$ of Ho et al.
leaves almost pure noise for the last third of its steps, the cosine $\bar\alpha_t$ of Nichol
& Dhariwal (2021) spends them more evenly; $\mathrm{SNR}(t) = \bar\alpha_t / (1 -
\bar\alpha_t)$ compares schedules on one axis. **Guidance** trades diversity for fidelity
to a condition: classifier-free guidance (Ho & Salimans 2022) trains one network with and
without the label and extrapolates from the unconditional estimate toward the conditional
one, $\tilde\epsilon = (1 + w)\,\epsilon_\theta(x, c) - w\,\epsilon_\theta(x, \varnothing)$.

The code: `schedules` (linear and cosine $\beta_t$, $\bar\alpha_t$, SNR, posterior
variances), `process` ($q(x_t \mid x_0)$, one step of the chain, the posterior $q(x_{t-1}
\mid x_t, x_0)$, $L_\text{simple}$ with its randomness from a passed generator), `unet` (a
small U-Net for 28x28 digits with time embedding, GroupNorm residual blocks, attention at
7x7 and optional class conditioning; an MLP for 2-D points), `samplers` (DDPM and DDIM
steps, timestep subsequences, classifier-free guidance, the sampling loop) and `score`
(multi-level denoising score matching and annealed Langevin dynamics). Tests prove the
closed form equal to iterating the chain, the schedules equal to their formulas, and the
DDPM and DDIM steps equal to diffusers' schedulers on the same inputs. Samples of 2-D data
are scored with `mlatlas.core.sample_distance` (sliced Wasserstein, MMD), samples of digits
with topic 13's yardstick.
"""

from mlatlas.generative.diffusion.process import (
    drop_labels,
    eps_loss,
    predict_x0,
    q_posterior,
    q_sample,
    q_step,
)
from mlatlas.generative.diffusion.samplers import (
    ddim_sigma,
    ddim_step,
    ddpm_step,
    guided_eps,
    reverse_process,
    sample,
    timestep_subsequence,
)
from mlatlas.generative.diffusion.schedules import (
    Schedule,
    cosine_alpha_bar,
    cosine_betas,
    cosine_schedule,
    linear_betas,
    linear_schedule,
    make_schedule,
)
from mlatlas.generative.diffusion.score import (
    annealed_langevin,
    dsm_loss,
    geometric_sigmas,
    langevin,
    score_from_eps,
)
from mlatlas.generative.diffusion.unet import (
    AttentionBlock,
    DenoiserMLP,
    ResBlock,
    UNet,
    timestep_embedding,
)

__all__ = [
    "AttentionBlock",
    "DenoiserMLP",
    "ResBlock",
    "Schedule",
    "UNet",
    "annealed_langevin",
    "cosine_alpha_bar",
    "cosine_betas",
    "cosine_schedule",
    "ddim_sigma",
    "ddim_step",
    "ddpm_step",
    "drop_labels",
    "dsm_loss",
    "eps_loss",
    "geometric_sigmas",
    "guided_eps",
    "langevin",
    "linear_betas",
    "linear_schedule",
    "make_schedule",
    "predict_x0",
    "q_posterior",
    "q_sample",
    "q_step",
    "reverse_process",
    "sample",
    "score_from_eps",
    "timestep_embedding",
    "timestep_subsequence",
]
