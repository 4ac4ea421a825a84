"""Helpers the losses labs share: the fixed data split, per-member minibatches for batched
ensembles (`mlatlas.core.ensemble`), and per-member evaluation.

An ensemble member is one (arm, replicate) pair. Members of the same replicate are given
generators of the same stream (e.g. each calls ``rep.rng("batches")``), so the arms of a
paired comparison see the same minibatches and differ only by what the claim is about.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from mlatlas.core.data import image_classification
from mlatlas.core.seeding import fixed_rng
from mlatlas.core.train import batches_for_steps


def load_images(name: str, n_train: int | None = None):
    """`image_classification` with a split and subset that stay fixed whatever --seed is."""
    return image_classification(name, fixed_rng("losses", name, n_train), n_train=n_train)


def member_batches(
    sizes: Sequence[int], batch_size: int, steps: int, rngs: Sequence[np.random.Generator]
) -> Iterator[torch.Tensor]:
    """Exactly `steps` index tensors of shape (R, batch_size): row r is member r's minibatch
    of range(sizes[r]), drawn by `batches_for_steps` from rngs[r]."""
    its = [batches_for_steps(n, batch_size, steps, g) for n, g in zip(sizes, rngs, strict=True)]
    for _ in range(steps):
        yield torch.stack([next(it) for it in its])
