r"""Topic 2, activation functions.

An activation $\phi$ makes a network nonlinear, and its derivative $\phi'$ multiplies every
gradient that passes through a unit. Sigmoid and tanh saturate: $\phi'(x) \to 0$ as
$|x|$ grows, and $\sigma'(x) \le 1/4$ everywhere. ReLU passes gradients unchanged where it is
active, but a unit that is never active gets no gradient at all. Smooth alternatives (ELU,
SELU, softplus, SiLU/Swish, GELU, Mish) sit between the two. `functions` writes each $\phi$
and $\phi'$ by hand; the labs measure saturation, training speed, dead units and the shape
of the functions each activation makes.
"""

from mlatlas.foundations.activations.functions import (
    ACTIVATIONS,
    Activation,
    ActivationModule,
    activate,
    get_activation,
    mlp,
)

__all__ = ["ACTIVATIONS", "Activation", "ActivationModule", "activate", "get_activation", "mlp"]
