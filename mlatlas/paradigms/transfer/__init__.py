r"""Topic 9, transfer learning and fine-tuning.

A network trained on a large source task has already paid for features: keep them and fit a
new head on the target (a *linear probe*), fine-tune the last $k$ layers or all of them,
give each layer its own learning rate ($\eta^{l-1} = \eta^l / 2.6$, discriminative
fine-tuning; Howard & Ruder 2018), or freeze the weights and learn a low-rank update,
$h = W_0 x + \frac{\alpha}{r} B A x$ with $B = 0$ at the start (LoRA; Hu et al. 2021), which
merges back into $W_0$ after training. Yosinski et al. (2014) measured how transferable
features are layer by layer: first layers are general, last layers specific to the source.

Two things go wrong. Fine-tuning on the target moves the shared weights and erases the
source task (*catastrophic forgetting*; McCloskey & Cohen 1989); elastic weight
consolidation holds each weight near its old value in proportion to its Fisher information,
$\frac{\lambda}{2}\sum_i F_i(\theta_i - \theta^*_i)^2$ (Kirkpatrick et al. 2017), and
rehearsal replays a few stored source examples. And a target *domain* that looks different
breaks a source-trained model; domain-adversarial training (DANN; Ganin & Lempitsky 2015)
learns features a domain classifier cannot tell apart, through a gradient reversal layer
that is the identity forward and multiplies the gradient by $-\lambda$ backward.

`lora`, `ewc`, `grl`, `dann` and `finetune` build these from their equations (tested against
closed forms, per-example gradients and autograd in `tests/test_transfer.py`); `models` is the
MLP with one head per task the labs transfer; `data` makes source and target tasks from MNIST,
Fashion-MNIST and scikit-learn's digits, and the texture-blended target domain. The labs
measure label efficiency (probe, fine-tune, LoRA, scratch at 1 to 100 labels per class),
transferability by layer, forgetting and what rehearsal, EWC and LoRA keep, and DANN against
source-only training on a shifted domain.
"""

from mlatlas.paradigms.transfer.dann import DANN, dann_lambda
from mlatlas.paradigms.transfer.ewc import ewc_penalty, fisher_diagonal
from mlatlas.paradigms.transfer.finetune import (
    discriminative_groups,
    last_k,
    layer_of,
    linear_probe,
    mask_members,
    set_trainable,
)
from mlatlas.paradigms.transfer.grl import GradientReversal, grad_reverse
from mlatlas.paradigms.transfer.lora import LoRALinear, add_lora, merge_lora
from mlatlas.paradigms.transfer.models import TransferMLP

__all__ = [
    "DANN",
    "GradientReversal",
    "LoRALinear",
    "TransferMLP",
    "add_lora",
    "dann_lambda",
    "discriminative_groups",
    "ewc_penalty",
    "fisher_diagonal",
    "grad_reverse",
    "last_k",
    "layer_of",
    "linear_probe",
    "mask_members",
    "merge_lora",
    "set_trainable",
]
