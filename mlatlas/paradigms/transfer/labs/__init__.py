"""Labs of topic 9 (transfer), one file each, in reading order:

label_efficiency: probe, fine-tune, LoRA and scratch at 1 to 100 labels per class.
layer_transfer: copy the first k layers of a source network, frozen or fine-tuned.
forgetting: source accuracy after fine-tuning on a target; rehearsal, EWC and LoRA.
domain_adaptation: a texture-blended target domain, source-only against DANN.
"""

# the import order is the labs' order
# isort: off
from mlatlas.paradigms.transfer.labs import label_efficiency  # noqa: F401
from mlatlas.paradigms.transfer.labs import layer_transfer  # noqa: F401
from mlatlas.paradigms.transfer.labs import forgetting  # noqa: F401
from mlatlas.paradigms.transfer.labs import domain_adaptation  # noqa: F401
# isort: on
