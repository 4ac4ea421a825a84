"""Labs of topic 7 (transformers), one file each, in reading order:

seq2seq_attention: reversing sequences with a GRU encoder-decoder, with and without attention.
position_matters: an order task that self-attention solves only with position encodings.
char_gpt: a character-level GPT on Tiny Shakespeare in a few minutes of CPU.
parallelism: training throughput of a transformer and an LSTM of the same size, by length.
attention_maps: what an encoder trained to reverse its input attends to.
vit: a vision transformer against LeNet-5 on MNIST and Fashion-MNIST.
"""

# the import order is the labs' order
# isort: off
from mlatlas.architectures.transformers.labs import seq2seq_attention  # noqa: F401
from mlatlas.architectures.transformers.labs import position_matters  # noqa: F401
from mlatlas.architectures.transformers.labs import char_gpt  # noqa: F401
from mlatlas.architectures.transformers.labs import parallelism  # noqa: F401
from mlatlas.architectures.transformers.labs import attention_maps  # noqa: F401
from mlatlas.architectures.transformers.labs import vit  # noqa: F401
# isort: on
