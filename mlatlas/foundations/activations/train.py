"""Training helpers shared by the activation labs: replicates as one batched ensemble.

Every comparative lab of this topic trains R replicates (seeds) of one arm at once as an
`Ensemble`. Replicate r's model is built after ``rep.seed_torch(key)``, so two arms with the
same architecture start from the same weights in the same replicate and differ only in what
the claim is about; replicate r also draws its own minibatch order from ``rep.rng(key)``, the
same stream in every arm (common random numbers for the paired comparisons).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import batches_for_steps


def hidden_preactivations(model: torch.nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-activations z_l of every hidden layer of an MLP, for input x."""
    out, h = [], x
    layers = list(model)
    for i, layer in enumerate(layers):
        h = layer(h)
        if isinstance(layer, torch.nn.Linear) and i < len(layers) - 1:
            out.append(h)
    return out


def replicate_ensemble(
    reps: Sequence[Replicate], build: Callable[[Replicate], torch.nn.Module], key: str = "init"
) -> Ensemble:
    """One model per replicate, built after ``rep.seed_torch(key)``, stacked as an Ensemble."""
    models = []
    for rep in reps:
        rep.seed_torch(key)
        models.append(build(rep))
    return Ensemble(models)


def member_batches(
    n: int, batch_size: int, steps: int, reps: Sequence[Replicate], key: str = "batches"
) -> Iterator[torch.Tensor]:
    """`steps` index tensors of shape (R, batch_size): row r is replicate r's own minibatch."""
    streams = [batches_for_steps(n, batch_size, steps, rep.rng(key)) for rep in reps]
    for idx in zip(*streams, strict=True):
        yield torch.stack(idx)


def ensemble_cross_entropy(
    x: torch.Tensor, y: torch.Tensor
) -> Callable[[Ensemble, torch.Tensor], torch.Tensor]:
    """loss_fn for `fit`: each member's mean cross-entropy on its own minibatch, shape (R,)."""

    def loss_fn(ens: Ensemble, idx: torch.Tensor) -> torch.Tensor:
        logits = ens(x[idx], per_member=True)  # (R, B, C)
        r, b, c = logits.shape
        flat = F.cross_entropy(logits.reshape(r * b, c), y[idx].reshape(-1), reduction="none")
        return flat.view(r, b).mean(1)

    return loss_fn
