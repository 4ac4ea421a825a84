"""Labs of topic 10 (self-supervised learning), one file each, in reading order:

pretext_probe: linear probes of SimCLR, rotation and MAE encoders against random and supervised.
label_efficiency: a SimCLR probe against training from scratch with 1% and 10% of the labels.
augmentation_ablation: SimCLR with every augmentation and with each one left out.
alignment_uniformity: Wang & Isola's alignment and uniformity against probe accuracy.
"""

# the import order is the labs' order
# isort: off
from mlatlas.paradigms.selfsupervised.labs import pretext_probe  # noqa: F401
from mlatlas.paradigms.selfsupervised.labs import label_efficiency  # noqa: F401
from mlatlas.paradigms.selfsupervised.labs import augmentation_ablation  # noqa: F401
from mlatlas.paradigms.selfsupervised.labs import alignment_uniformity  # noqa: F401
# isort: on
