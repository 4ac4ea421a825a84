r"""Topic 3, loss functions and training dynamics.

A loss states what the model should care about. Squared error is the negative
log-likelihood of Gaussian noise; cross-entropy that of a categorical distribution, and its
gradient with respect to the logits, $\mathrm{softmax}(z) - \mathrm{onehot}(y)$, stays large
when the model is confidently wrong. Focal loss $-(1-p_t)^\gamma \log p_t$ (Lin et al. 2017)
takes weight off easy examples; triplet, margin-contrastive and InfoNCE losses shape an
embedding by comparing examples; curricula change which examples the optimizer sees when.
"""

from mlatlas.foundations.losses.functions import (
    bce_with_logits,
    binary_hinge,
    contrastive_margin,
    cross_entropy,
    focal_binary,
    focal_multiclass,
    huber,
    kl_div,
    log_sigmoid,
    log_softmax,
    mae,
    mse,
    multiclass_hinge,
    nt_xent,
    pairwise_distance,
    triplet,
)

__all__ = [
    "bce_with_logits",
    "binary_hinge",
    "contrastive_margin",
    "cross_entropy",
    "focal_binary",
    "focal_multiclass",
    "huber",
    "kl_div",
    "log_sigmoid",
    "log_softmax",
    "mae",
    "mse",
    "multiclass_hinge",
    "nt_xent",
    "pairwise_distance",
    "triplet",
]
