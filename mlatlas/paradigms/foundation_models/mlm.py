"""BERT's masked language model: corrupt 15% of the tokens, predict the originals there.

Devlin et al. (2019) choose a random 15% of the positions, M, and replace the token there by

    [MASK] with probability 0.8,   a uniformly random token with 0.1,   itself with 0.1,

so the encoder cannot learn that only [MASK] positions matter (the 10% kept unchanged) and
that the visible token is always right (the 10% random). The loss is the cross-entropy at
the chosen positions only,

    L = -1/|M| sum_{t in M} log p(x_t | x~),

where x~ is the corrupted input; positions outside M carry no loss and no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import Encoder

IGNORE = -100  # label of a position outside M (F.cross_entropy's ignore_index)


@dataclass(frozen=True)
class Masking:
    rate: float = 0.15  # share of positions in M
    mask: float = 0.8  # of M: replaced by [MASK]
    random: float = 0.1  # of M: replaced by a random token (the rest stay unchanged)


def mask_tokens(
    ids: torch.Tensor,
    mask_id: int,
    vocab: int,
    gen: torch.Generator,
    masking: Masking = Masking(),
    special: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted inputs, labels): labels hold the original token at the chosen positions
    and IGNORE elsewhere. `special` (bool, like `ids`) marks positions never chosen
    (padding, [CLS]). Random replacements are drawn from the whole vocabulary, as in BERT."""
    u = torch.rand(ids.shape, generator=gen)
    chosen = u < masking.rate
    if special is not None:
        chosen &= ~special
    # one more uniform splits the chosen positions 80 / 10 / 10
    v = torch.rand(ids.shape, generator=gen)
    to_mask = chosen & (v < masking.mask)
    to_random = chosen & (v >= masking.mask) & (v < masking.mask + masking.random)
    random_ids = torch.randint(0, vocab, ids.shape, generator=gen)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not IGNORE (written out rather
    than with ``ignore_index`` so the rule is visible; the tests check it equals that)."""
    keep = labels != IGNORE
    logp = F.log_softmax(logits[keep], dim=-1)
    return -logp.gather(-1, labels[keep][:, None]).mean()


class MaskedLM(nn.Module):
    """A BERT-style encoder: token embeddings, topic 7's bidirectional pre-LN `Encoder`, and
    a head tied to the embedding matrix that predicts a token at every position."""

    def __init__(
        self, vocab: int, d: int = 64, heads: int = 4, layers: int = 2, max_len: int = 128
    ):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.encoder = Encoder(d, heads, layers, max_len)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight
        nn.init.normal_(self.tok.weight, 0.0, 0.02)

    def forward(self, idx: torch.Tensor, key_padding_mask: torch.Tensor | None = None):
        return self.head(self.encoder(self.tok(idx), key_padding_mask))
