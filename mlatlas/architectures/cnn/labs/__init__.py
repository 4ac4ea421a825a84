"""Labs of topic 5 (cnn), one file each, in reading order:

lenet_mnist: LeNet-5 on MNIST against the paper's 0.95% test error.
translation: conv commutes with shifts (check); CNN vs equal-size MLP on shifted digits.
hierarchical_features: linear probes by stage, trained vs initial; receptive fields.
parameter_sharing: CNN vs equal-size MLP on Fashion-MNIST.
"""

# the import order is the labs' order
# isort: off
from mlatlas.architectures.cnn.labs import lenet_mnist  # noqa: F401
from mlatlas.architectures.cnn.labs import translation  # noqa: F401
from mlatlas.architectures.cnn.labs import hierarchical_features  # noqa: F401
from mlatlas.architectures.cnn.labs import parameter_sharing  # noqa: F401
# isort: on
