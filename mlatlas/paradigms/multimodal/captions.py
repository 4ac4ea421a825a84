"""Captioned images generated from MNIST, Fashion-MNIST or scikit-learn's digits.

Each example is a glyph (a digit or a garment, shrunk to 14x14) drawn in one colour into one
quadrant of a black 28x28 RGB canvas, with a caption that names some of its attributes:

    image    x[c, i, j] = colour[c] * glyph[i - r0, j - c0]   inside quadrant (r0, c0), else 0
    caption  a template filled with the attribute words, e.g. "a red seven in the top left"

Three attributes, all applied to the pixels: the class (the glyph itself), the colour (which
RGB channel holds the ink) and the position (which quadrant). Two things are held out of
training, so that generalisation can be measured rather than assumed:

* templates: `HELD_OUT_TEMPLATES` reorder the training words into sentences never seen;
* attribute combinations: a (class, colour) pair is unseen when (class + colour) % 3 == 0,
  so each class is trained in two of the three colours and each colour with six or seven
  classes (the compositional split of e.g. Lake & Baroni 2018, here for images).

Captions are word tokens; `Vocab` maps them to ids, appends an end-of-text token whose
position the text encoder pools (as CLIP pools its [EOS] token, Radford et al. 2021) and
pads with id 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlatlas.core.data import REGISTRY, load_digits, load_fashion_mnist, load_mnist, record
from mlatlas.core.seeding import fixed_rng

CELL = 14  # a glyph's side; the canvas is a 2 x 2 grid of cells
CANVAS = 2 * CELL
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}
COLOUR_NAMES = tuple(COLOURS)
POSITIONS = ("top left", "top right", "bottom left", "bottom right")  # row-major quadrants
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION_WORDS = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)
CLASS_WORDS = {"digits": DIGIT_WORDS, "mnist": DIGIT_WORDS, "fashion-mnist": FASHION_WORDS}

# {cls}, {colour}, {pos}: a template may leave attributes out, as alt-text does
TRAIN_TEMPLATES = (
    "a {colour} {cls} in the {pos}",
    "the {cls} is {colour} and sits in the {pos}",
    "{pos} : a {colour} {cls}",
    "a {colour} {cls}",
    "a {cls} in the {pos}",
    "a picture of a {cls}",
    "something {colour} in the {pos}",
)
HELD_OUT_TEMPLATES = (
    "in the {pos} sits a {cls} that is {colour}",
    "a picture of a {colour} {cls} in the {pos}",
    "{colour} {cls} , {pos}",
)
PAD, EOS = 0, 1


def fill(template: str, cls: str, colour: str, pos: str) -> str:
    return template.format(cls=cls, colour=colour, pos=pos)


def mentions(template: str) -> tuple[bool, bool, bool]:
    """Which attributes (class, colour, position) a template names."""
    return ("{cls}" in template, "{colour}" in template, "{pos}" in template)


def unseen_combo(cls: np.ndarray | int, colour: np.ndarray | int) -> np.ndarray | bool:
    """True for the (class, colour) pairs held out of training."""
    return (np.asarray(cls) + np.asarray(colour)) % 3 == 0


def compose(glyphs: torch.Tensor, colour: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """(N, CELL, CELL) glyphs in [0, 1] -> (N, 3, CANVAS, CANVAS) canvases: glyph n is inked
    in colour `colour[n]` into quadrant `position[n]` (0 top left, 1 top right, 2 bottom left,
    3 bottom right)."""
    n = len(glyphs)
    palette = torch.tensor(list(COLOURS.values()), dtype=glyphs.dtype, device=glyphs.device)
    rgb = palette[colour]  # (N, 3)
    out = torch.zeros(n, 3, CANVAS, CANVAS, dtype=glyphs.dtype, device=glyphs.device)
    for q in range(len(POSITIONS)):
        sel = position == q
        r0, c0 = (q // 2) * CELL, (q % 2) * CELL
        out[sel, :, r0 : r0 + CELL, c0 : c0 + CELL] = rgb[sel, :, None, None] * glyphs[sel, None]
    return out


class Vocab:
    """Word ids for every word the templates and attribute names can produce."""

    def __init__(self, class_words: tuple[str, ...]) -> None:
        words: set[str] = set()
        for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES:
            for cls in class_words:
                for colour in COLOUR_NAMES:
                    for pos in POSITIONS:
                        words.update(fill(t, cls, colour, pos).split())
        self.words = ["<pad>", "<eos>", *sorted(words)]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_len = 1 + max(
            len(fill(t, c, "green", "bottom right").split())
            for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES
            for c in class_words
        )

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(N, max_len) ids: the words, then EOS, then PAD."""
        out = torch.full((len(texts), self.max_len), PAD, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.index[w] for w in t.split()] + [EOS]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


@dataclass
class Captioned:
    """Images, their attributes and one caption each (text and token ids)."""

    images: torch.Tensor  # (N, 3, CANVAS, CANVAS), float32 in [0, 1]
    cls: torch.Tensor  # (N,) class id
    colour: torch.Tensor  # (N,) index into COLOUR_NAMES
    position: torch.Tensor  # (N,) index into POSITIONS
    texts: list[str]
    tokens: torch.Tensor  # (N, vocab.max_len)
    template: torch.Tensor  # (N,) index into the templates used

    def __len__(self) -> int:
        return len(self.cls)


def load_glyphs(name: str, split: str, n: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """(N, CELL, CELL) glyphs in [0, 1] and their labels; a fixed subset of n if given.
    digits (8x8, no download) is split 75/25 by a fixed permutation; the others by the
    dataset's own train/test files."""
    if name == "digits":
        x, y = load_digits()
        x = x.reshape(-1, 8, 8) / 16.0
        order = fixed_rng("multimodal digits split").permutation(len(x))
        cut = int(0.75 * len(x))
        keep = order[:cut] if split == "train" else order[cut:]
        x, y = x[keep], y[keep]
    elif name in ("mnist", "fashion-mnist"):
        x, y = (load_mnist if name == "mnist" else load_fashion_mnist)(split)
        x = x / 255.0
    else:
        raise KeyError(f"unknown image set {name!r}; known: {', '.join(CLASS_WORDS)}")
    if n is not None and n < len(x):
        keep = fixed_rng("multimodal subset", name, split).choice(len(x), n, replace=False)
        x, y = x[keep], y[keep]
    t = torch.as_tensor(np.asarray(x, dtype=np.float32)).unsqueeze(1)  # on the lab's device
    t = F.interpolate(t, size=(CELL, CELL), mode="bilinear", antialias=t.shape[-1] > CELL)
    return t[:, 0].clamp(0, 1), np.asarray(y, dtype=np.int64)


def dataset_record(name: str) -> dict[str, Any]:
    return REGISTRY[name].record() if name in REGISTRY else record("sklearn-digits")


def make_captioned(
    glyphs: torch.Tensor,
    labels: np.ndarray,
    class_words: tuple[str, ...],
    vocab: Vocab,
    rng: np.random.Generator,
    combos: str = "seen",
    templates: tuple[str, ...] = TRAIN_TEMPLATES,
) -> Captioned:
    """Give every glyph a colour, a position and a caption drawn from `rng`.

    combos: "seen" draws colours only from trained (class, colour) pairs, "unseen" only the
    held-out one, "all" any colour. Positions and templates are uniform."""
    n = len(labels)
    allowed = np.array([[not unseen_combo(c, k) for k in range(3)] for c in range(10)])
    if combos == "unseen":
        allowed = ~allowed
    elif combos == "all":
        allowed = np.ones_like(allowed)
    elif combos != "seen":
        raise ValueError(f"combos must be 'seen', 'unseen' or 'all', not {combos!r}")
    u = rng.random(n)
    choices = allowed[labels]  # (N, 3)
    k = np.minimum((u * choices.sum(1)).astype(np.int64), choices.sum(1) - 1)
    colour = np.array([np.flatnonzero(row)[j] for row, j in zip(choices, k, strict=True)])
    position = rng.integers(0, len(POSITIONS), n)
    template = rng.integers(0, len(templates), n)
    texts = [
        fill(templates[t], class_words[c], COLOUR_NAMES[k], POSITIONS[p])
        for t, c, k, p in zip(template, labels, colour, position, strict=True)
    ]
    colour_t, position_t = torch.as_tensor(colour), torch.as_tensor(position)
    return Captioned(
        compose(glyphs, colour_t, position_t),
        torch.as_tensor(labels),
        colour_t,
        position_t,
        texts,
        vocab.encode(texts),
        torch.as_tensor(template),
    )
