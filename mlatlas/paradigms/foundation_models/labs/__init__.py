"""Labs of topic 11 (foundation models), one file each, in reading order:

scaling_laws: loss against parameters and tokens for tiny GPTs, with fitted scaling laws.
in_context: a transformer that learns linear regression from the examples in its prompt.
pretrain_finetune: WikiText-2 pre-training, then fine-tuning on a small Shakespeare slice.
emergence: a size sweep on addition, scored with exact match and with smooth metrics.
prompting: one trained model, six prompts: demonstrations, an instruction, the delimiter.
"""

# the import order is the labs' order
# isort: off
from mlatlas.paradigms.foundation_models.labs import scaling_laws  # noqa: F401
from mlatlas.paradigms.foundation_models.labs import in_context  # noqa: F401
from mlatlas.paradigms.foundation_models.labs import pretrain_finetune  # noqa: F401
from mlatlas.paradigms.foundation_models.labs import emergence  # noqa: F401
from mlatlas.paradigms.foundation_models.labs import prompting  # noqa: F401
# isort: on
