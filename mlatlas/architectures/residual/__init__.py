r"""Topic 8, residual networks and skip connections.

A residual block computes $y = x + F(x)$: the identity is the default and each block
learns a correction. The gradient then has a direct path,
$\partial L/\partial x_l = \partial L/\partial x_L\,(1 + \partial/\partial x_l \sum F)$
(He et al. 2016b), which is why networks with hundreds of layers train where plain ones of
the same depth get worse. DenseNet concatenates instead of adding. `blocks` holds the
basic (from topic 5), bottleneck, pre-activation and dense blocks; the labs reproduce the
degradation problem, gradient flow with depth, lesions, and DenseNet vs ResNet, each over
several seeds trained at once as one net (`grouped`: replicates stacked as channel groups).
"""

from mlatlas.architectures.residual.blocks import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    DenseBlock,
    DenseNet,
    PreActBlock,
    Transition,
    zero_init_residual,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "DenseBlock",
    "DenseNet",
    "PreActBlock",
    "Transition",
    "zero_init_residual",
]
