"""Labs of topic 2, activation functions, in order:

saturation — derivative bounds, gradient by layer at init, saturated units during training.
training_dynamics — the same deep MLP with each activation: steps to a target, final accuracy.
dead_units — never-active ReLU units after high-LR training, and Leaky ReLU / GELU as the fix.
inductive_bias — piecewise-linear ReLU fits vs smooth tanh fits, and how each extrapolates.
"""

from mlatlas.foundations.activations.labs import (  # noqa: F401, I001 (lab order)
    saturation,
    training_dynamics,
    dead_units,
    inductive_bias,
)
