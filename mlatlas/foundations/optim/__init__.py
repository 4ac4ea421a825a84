r"""Topic 4, gradient descent and optimization.

Gradient descent $x_{t+1} = x_t - \eta \nabla f(x_t)$ on an $L$-smooth, $\mu$-strongly convex
function converges linearly at rate $(\kappa-1)/(\kappa+1)$, $\kappa = L/\mu$; heavy-ball
momentum improves this to $(\sqrt\kappa-1)/(\sqrt\kappa+1)$ (Polyak 1964). Adaptive methods
(AdaGrad, RMSprop, Adam) scale each coordinate by its gradient history; AdamW takes weight
decay out of that scaling; Muon orthogonalises the momentum of each weight matrix
(Jordan et al. 2024). Noise lets gradient methods escape saddle points, and the
step-size schedule trades speed for the final noise floor. `optimizers` and `schedules`
write these from their equations; the labs measure them.
"""

from mlatlas.foundations.optim.muon import Muon, newton_schulz
from mlatlas.foundations.optim.optimizers import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, RMSprop
from mlatlas.foundations.optim.schedules import (
    Scheduled,
    constant,
    cosine,
    exponential,
    one_cycle,
    step_decay,
    warmup_cosine,
)

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Muon",
    "RMSprop",
    "Scheduled",
    "constant",
    "cosine",
    "exponential",
    "newton_schulz",
    "one_cycle",
    "step_decay",
    "warmup_cosine",
]
