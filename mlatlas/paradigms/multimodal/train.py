"""Training and evaluation helpers the labs of topic 12 share.

`train_ensemble` trains R models that read (image, tokens) as one batched `Ensemble`, each
member on its own minibatches (drawn without replacement from its replicate's generator, so
the arms of one seed see the same batches); `clip_embeddings` embeds images and texts with
one trained CLIP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mlatlas.core.ensemble import Ensemble, member_batches
from mlatlas.core.seeding import Replicate, fixed_rng
from mlatlas.core.train import FitResult, fit
from mlatlas.foundations.optim.schedules import warmup_cosine
from mlatlas.paradigms.multimodal.captions import (
    CLASS_WORDS,
    Captioned,
    Vocab,
    dataset_record,
    load_glyphs,
    make_captioned,
)
from mlatlas.paradigms.multimodal.clip import CLIP, TextEncoder, clip_loss, image_encoder


def caption_data(name: str, n_train: int | None) -> tuple[Vocab, Captioned, dict[str, Any]]:
    """The vocabulary, a fixed captioned training set (seen pairs, training templates) and
    the dataset's record."""
    words = CLASS_WORDS[name]
    vocab = Vocab(words)
    glyphs, labels = load_glyphs(name, "train", n_train)
    train = make_captioned(glyphs, labels, words, vocab, fixed_rng("multimodal train", name))
    return vocab, train, {**dataset_record(name), "n_train": len(train)}


def eval_captions(
    name: str, vocab: Vocab, n: int | None, combos: str, templates: tuple[str, ...]
) -> Captioned:
    """Captioned test images (fixed whatever the run seed)."""
    glyphs, labels = load_glyphs(name, "test", n)
    rng = fixed_rng("multimodal test", name, combos)
    return make_captioned(glyphs, labels, CLASS_WORDS[name], vocab, rng, combos, templates)


def build_clip(
    vocab: Vocab, dim: int, image: str = "lenet", learn_temperature: bool = True, layers: int = 2
) -> CLIP:
    return CLIP(
        image_encoder(image, dim),
        TextEncoder(len(vocab), vocab.max_len, dim, layers=layers),
        learn_temperature=learn_temperature,
    )


def train_ensemble(
    models: Sequence[nn.Module],
    reps: Sequence[Replicate],
    images: torch.Tensor,
    tokens: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    batch: int,
    lr: float,
    ctx: Any = None,
    desc: str = "train",
) -> tuple[Ensemble, FitResult]:
    """Adam with linear warmup (5% of the steps) and cosine decay on ``loss(outputs, idx)``,
    where outputs = model(images[idx], tokens[idx]) for member r's batch idx (B,).
    reps[r] seeds member r's batches."""
    ens = Ensemble(list(models))
    gens = [rep.generator("batches") for rep in reps]
    n = len(images)

    def draw(g: torch.Generator) -> tuple[torch.Tensor]:
        return (torch.randperm(n, generator=g)[:batch],)

    def loss_fn(m: Ensemble, b: tuple[torch.Tensor]) -> torch.Tensor:
        (idx,) = b
        return m.call(
            lambda f, x, t, i: loss(f(x, t), i), images[idx], tokens[idx], idx, per_member=True
        )

    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    res = fit(
        ens,
        opt,
        loss_fn,
        member_batches(gens, draw),
        steps,
        ctx=ctx,
        desc=desc,
        schedule=warmup_cosine(lr, max(1, steps // 20), steps, start_factor=0.1),
        log_every=max(1, steps // 10),
    )
    return ens, res


def train_clip(
    models: Sequence[CLIP],
    reps: Sequence[Replicate],
    images: torch.Tensor,
    tokens: torch.Tensor,
    steps: int,
    batch: int,
    lr: float,
    ctx: Any = None,
    desc: str = "train",
) -> tuple[Ensemble, FitResult]:
    """CLIP's symmetric InfoNCE on minibatches of (image, caption) pairs."""
    return train_ensemble(
        models, reps, images, tokens, lambda z, _: clip_loss(z), steps, batch, lr, ctx, desc
    )


@torch.no_grad()
def clip_embeddings(
    model: CLIP, images: torch.Tensor, tokens: torch.Tensor, chunk: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised image and text embeddings of one trained CLIP (an ensemble's member)."""
    model.eval()
    img = [model.encode_image(images[i : i + chunk]) for i in range(0, len(images), chunk)]
    txt = [model.encode_text(tokens[i : i + chunk]) for i in range(0, len(tokens), chunk)]
    return torch.cat(img), torch.cat(txt)
