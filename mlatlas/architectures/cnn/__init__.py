r"""Topic 5, convolutional neural networks.

A convolution applies one small filter at every position,
$y_{o,i,j} = b_o + \sum_{c,u,v} w_{o,c,u,v}\, x_{c,\,si+du-p,\,sj+dv-p}$, so it is
translation-equivariant and its parameter count does not depend on the image size. Pooling
and striding grow the receptive field layer by layer, and features go from strokes to
parts. `conv` builds convolution and pooling from im2col windows, `receptive` computes
receptive fields, `models` holds LeNet-5, a small VGG and a CIFAR-style ResNet, `data`
loads and shifts images, and `train` has the training helpers the labs and benchmarks share
(the labs themselves live in `labs/`, one file each).
"""

from mlatlas.architectures.cnn.conv import Conv2d, avg_pool2d, conv2d, im2col, max_pool2d
from mlatlas.architectures.cnn.data import images, shift
from mlatlas.architectures.cnn.models import BasicBlock, CifarResNet, LeNet5, VGGSmall
from mlatlas.architectures.cnn.receptive import (
    Geometry,
    empirical_receptive_field,
    geometry_of,
    receptive_fields,
)

__all__ = [
    "BasicBlock",
    "CifarResNet",
    "Conv2d",
    "Geometry",
    "LeNet5",
    "VGGSmall",
    "avg_pool2d",
    "conv2d",
    "empirical_receptive_field",
    "geometry_of",
    "im2col",
    "images",
    "max_pool2d",
    "receptive_fields",
    "shift",
]
