"""Helpers the losses labs share: the fixed data split (per-member minibatches for batched
ensembles are `mlatlas.core.ensemble.member_batches`).

An ensemble member is one (arm, replicate) pair. Members of the same replicate are given
generators of the same stream (e.g. each calls ``rep.rng("batches")``), so the arms of a
paired comparison see the same minibatches and differ only by what the claim is about.
"""

from __future__ import annotations

from mlatlas.core.data import image_classification
from mlatlas.core.seeding import fixed_rng


def load_images(name: str, n_train: int | None = None):
    """`image_classification` with a split and subset that stay fixed whatever --seed is."""
    return image_classification(name, fixed_rng("losses", name, n_train), n_train=n_train)
