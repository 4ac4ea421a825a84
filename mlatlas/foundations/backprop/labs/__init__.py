"""Labs of topic 1 (backprop), one file each, in reading order:

universal_approximation: one hidden layer of growing width fits a 1-D function ever more closely.
gradient_flow: per-layer gradients at initialisation: vanishing, preserved, exploding.
why_depth: depth buys compositional functions cheaply; gradient descent does not always find them.
engine_equals_torch: the from-scratch engine and PyTorch train the same MLP to the same numbers.
"""

from mlatlas.foundations.backprop.labs import (  # noqa: F401, I001  (registers, in reading order)
    universal_approximation,
    gradient_flow,
    why_depth,
    engine_equals_torch,
)
