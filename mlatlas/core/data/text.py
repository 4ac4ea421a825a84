"""Character-level corpora for language models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mlatlas.core.data.loaders import load_tinyshakespeare
from mlatlas.core.data.registry import REGISTRY


@dataclass
class CharCorpus:
    train: torch.Tensor  # int64 token ids
    val: torch.Tensor
    vocab: tuple[str, ...]
    record: dict[str, Any]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def encode(self, text: str) -> torch.Tensor:
        index = {c: i for i, c in enumerate(self.vocab)}
        return torch.tensor([index[c] for c in text if c in index])

    def batch(self, split: str, batch_size: int, length: int, gen: torch.Generator):
        """Random windows: inputs (B, T) and next-character targets (B, T)."""
        data = self.train if split == "train" else self.val
        start = torch.randint(0, len(data) - length - 1, (batch_size,), generator=gen)
        idx = start[:, None] + torch.arange(length + 1)
        chunk = data[idx]
        return chunk[:, :-1], chunk[:, 1:]


def guide_text() -> str:
    """The guide's own topic descriptions, repeated: a small corpus that needs no download."""
    from mlatlas.guide import TOPICS

    return "\n".join(f"{t.title}. {t.tagline} {t.description}" for t in TOPICS) * 4


def char_corpus(name: str, val_fraction: float = 0.1) -> CharCorpus:
    """'tinyshakespeare' (registry) or 'guide' (built in); the last `val_fraction` of the text
    is the validation split, as in char-rnn and nanoGPT."""
    if name == "tinyshakespeare":
        text, rec = load_tinyshakespeare(), REGISTRY["tinyshakespeare"].record()
    elif name == "guide":
        text = guide_text()
        rec = {"name": "guide-text", "source": "mlatlas.guide topic descriptions, repeated 4x"}
    else:
        raise KeyError(f"unknown corpus {name!r}; known: tinyshakespeare, guide")
    vocab = tuple(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text])
    cut = int(len(ids) * (1 - val_fraction))
    return CharCorpus(ids[:cut], ids[cut:], vocab, {**rec, "chars": len(text), "vocab": len(vocab)})
