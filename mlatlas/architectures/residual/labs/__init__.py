"""Labs of topic 8 (residual), one file each, in reading order:

degradation: deeper plain nets train worse; residual nets of the same depth do not.
gradient_with_depth: the first layer's gradient at init, plain vs residual, 8 to 110 layers.
lesion: removing one block of a trained net costs a residual net less than a plain one.
densenet_vs_resnet: DenseNet vs ResNet-20, parameters (check) and accuracy (experiment).
"""

# the import order is the labs' order
# isort: off
from mlatlas.architectures.residual.labs import degradation  # noqa: F401
from mlatlas.architectures.residual.labs import gradient_with_depth  # noqa: F401
from mlatlas.architectures.residual.labs import lesion  # noqa: F401
from mlatlas.architectures.residual.labs import densenet_vs_resnet  # noqa: F401
# isort: on
