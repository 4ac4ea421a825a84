"""Helpers the losses labs share: the fixed data split, per-member minibatches for batched
ensembles (`mlatlas.core.ensemble`), and per-member evaluation.

An ensemble member is one (arm, replicate) pair. Members of the same replicate are given
generators of the same stream (e.g. each calls ``rep.rng("batches")``), so the arms of a
paired comparison see the same minibatches and differ only by what the claim is about.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterator, Sequence

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


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_TRIM = _malloc_trim()


def trimming(
    on_step: Callable[[int, np.ndarray], bool | None] | None = None, every: int = 20
) -> Callable[[int, np.ndarray], bool | None]:
    """An ``on_step`` hook for `fit` that returns freed heap memory to the OS every `every`
    steps (glibc's ``malloc_trim``), then runs `on_step`.

    Why: `fit` keeps one small loss array per step; with glibc these small long-lived blocks
    land between the large per-step temporaries of a batched ensemble and stop the heap from
    shrinking, so resident memory grew by ~7 MB per step (5.5 GB after 1000 steps of a
    40-member ensemble). Trimming every 20 steps keeps it flat and costs no measurable time.
    """

    def hook(step: int, losses: np.ndarray) -> bool | None:
        if _TRIM is not None and step % every == 0:
            _TRIM(0)
        return on_step(step, losses) if on_step is not None else None

    return hook
