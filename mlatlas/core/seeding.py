"""Seeds from one place: every random choice of a lab derives from its run seed.

A lab never seeds anything itself. `Lab.replicates(n)` yields `Replicate`s; replicate ``id``
is the key that pairs the arms of a comparison, and its seed is derived from (run seed, id) by
NumPy's `SeedSequence`, so replicates are independent streams and ``--seed`` changes all of
them. Within a replicate, `rng(key)` / `generator(key)` / `seed_torch(key)` give a stream per
purpose: two arms asking for ``rng("batches")`` see the same batch order (common random
numbers, which make paired differences less noisy).

`TEST_SEED` names the one exception: data that must stay fixed whatever ``--seed`` says
(a held-out split, a probe set), drawn with `fixed_rng(key)`.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

import numpy as np
import torch

TEST_SEED = 20_240_601  # fixed data (held-out splits, probe inputs): never varies with --seed


def _key_words(keys: tuple[object, ...]) -> list[int]:
    """Stable 32-bit words for string or int keys (Python's hash() is salted per process)."""
    return [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from `seed` and any keys; distinct keys give independent streams."""
    ss = np.random.SeedSequence([int(seed) % 2**63, *_key_words(keys)])
    lo, hi = (int(w) for w in ss.generate_state(2, dtype=np.uint32))
    return (lo | hi << 32) % 2**63


def numpy_rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(seed, *keys)))


def torch_generator(
    seed: int, *keys: object, device: str | torch.device | None = None
) -> torch.Generator:
    """A seeded torch.Generator on `device`; by default the device tensors are made on now
    (the lab's device while a lab runs), so ``torch.randn(..., generator=g)`` works there."""
    g = torch.Generator(device=torch.get_default_device() if device is None else device)
    g.manual_seed(derive_seed(seed, *keys))
    return g


def seed_global(seed: int) -> None:
    """Seed Python's, NumPy's legacy and PyTorch's global generators (module inits use them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fixed_rng(*keys: object) -> np.random.Generator:
    """A generator that does not change with --seed: for fixed data (see TEST_SEED)."""
    return numpy_rng(TEST_SEED, *keys)


def fixed_generator(*keys: object) -> torch.Generator:
    return torch_generator(TEST_SEED, *keys)


@dataclass(frozen=True)
class Replicate:
    """One replicate of an experiment: its pairing id and its own seeded streams."""

    id: int
    seed: int

    def rng(self, *keys: object) -> np.random.Generator:
        """A NumPy generator for this replicate (and purpose `keys`)."""
        return numpy_rng(self.seed, *keys)

    def generator(self, *keys: object, device: str | torch.device | None = None) -> torch.Generator:
        """A torch.Generator for this replicate (and purpose `keys`), on the lab's device unless
        `device` says otherwise."""
        return torch_generator(self.seed, *keys, device=device)

    def seed_torch(self, *keys: object) -> int:
        """Seed the global generators (nn.Module inits draw from them) for this replicate and
        purpose; returns the seed used."""
        s = derive_seed(self.seed, *keys)
        seed_global(s)
        return s


def replicate(run_seed: int, rep_id: int) -> Replicate:
    return Replicate(rep_id, derive_seed(run_seed, "replicate", rep_id))
