r"""Topic 7, attention mechanisms and transformers.

Attention is a soft lookup, $\mathrm{softmax}(QK^\top/\sqrt{d_k})\,V$: each query scores
every key, and the output mixes the values by those weights (Bahdanau et al. 2015; Vaswani
et al. 2017). Self-attention has no notion of order, so positions are added or rotated in,
and with no recurrence every position of a sequence is processed in parallel. `attention`
builds scaled dot-product and multi-head attention and the position encodings; `models`
builds the pre-LN block, a GPT decoder, an encoder and a vision transformer; `train` holds
the char-GPT recipe and the batched-ensemble helpers that the labs and benchmarks share.
"""

from mlatlas.architectures.transformers.attention import (
    MultiheadAttention,
    RotaryEmbedding,
    scaled_dot_product_attention,
    sinusoidal_positions,
)
from mlatlas.architectures.transformers.models import GPT, Block, Encoder, GPTConfig, ViT

__all__ = [
    "GPT",
    "Block",
    "Encoder",
    "GPTConfig",
    "MultiheadAttention",
    "RotaryEmbedding",
    "ViT",
    "scaled_dot_product_attention",
    "sinusoidal_positions",
]
