"""Yes/no questions about the generated canvases: a small visual question answering task.

Each question asks about one attribute the generator applied to the image:

    "is it red ?"              colour
    "is it in the top left ?"  position
    "is it a seven ?"          class

The answer is "yes" with probability 1/2, and otherwise the question names one of the other
values uniformly. Attributes are uniform too, so the question alone carries no information
about the answer (P(yes | question) = 1/2 exactly) and neither does the image alone: any
answer above chance needs both modalities (the point of Goyal et al. 2017's balanced VQA v2,
made exact here by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlatlas.paradigms.multimodal.captions import COLOUR_NAMES, EOS, PAD, POSITIONS, compose

QUESTION_TYPES = ("colour", "position", "class")
TEMPLATES = {"colour": "is it {v} ?", "position": "is it in the {v} ?", "class": "is it a {v} ?"}


class QuestionVocab:
    """Word ids of every question the templates can produce for these class words."""

    def __init__(self, class_words: tuple[str, ...]) -> None:
        words: set[str] = set()
        for kind, values in zip(
            QUESTION_TYPES, (COLOUR_NAMES, POSITIONS, class_words), strict=True
        ):
            for v in values:
                words.update(TEMPLATES[kind].format(v=v).split())
        self.words = ["<pad>", "<eos>", *sorted(words)]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_len = 1 + max(
            len(TEMPLATES[k].format(v=v).split())
            for k, values in zip(
                QUESTION_TYPES, (COLOUR_NAMES, POSITIONS, class_words), strict=True
            )
            for v in values
        )

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = torch.full((len(texts), self.max_len), PAD, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.index[w] for w in t.split()] + [EOS]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


@dataclass
class Questions:
    images: torch.Tensor  # (N, 3, CANVAS, CANVAS)
    tokens: torch.Tensor  # (N, vocab.max_len)
    answer: torch.Tensor  # (N,) 1 = yes, 0 = no
    kind: torch.Tensor  # (N,) index into QUESTION_TYPES
    texts: list[str]

    def __len__(self) -> int:
        return len(self.answer)


def make_questions(
    glyphs: torch.Tensor,
    labels: np.ndarray,
    class_words: tuple[str, ...],
    vocab: QuestionVocab,
    rng: np.random.Generator,
) -> Questions:
    """One canvas (uniform colour and position) and one question per glyph, drawn from rng."""
    n = len(labels)
    colour = rng.integers(0, len(COLOUR_NAMES), n)
    position = rng.integers(0, len(POSITIONS), n)
    kind = rng.integers(0, len(QUESTION_TYPES), n)
    yes = rng.random(n) < 0.5
    u = rng.random(n)
    texts = []
    for i in range(n):
        values = (COLOUR_NAMES, POSITIONS, class_words)[kind[i]]
        true = (colour[i], position[i], labels[i])[kind[i]]
        others = [j for j in range(len(values)) if j != true]
        asked = true if yes[i] else others[min(int(u[i] * len(others)), len(others) - 1)]
        texts.append(TEMPLATES[QUESTION_TYPES[kind[i]]].format(v=values[asked]))
    images = compose(glyphs, torch.as_tensor(colour), torch.as_tensor(position))
    return Questions(
        images,
        vocab.encode(texts),
        torch.as_tensor(yes.astype(np.int64)),
        torch.as_tensor(kind),
        texts,
    )
