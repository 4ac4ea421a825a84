"""Helpers the activation labs share.

Every comparative lab of this topic trains R replicates (seeds) of one arm at once as an
`Ensemble` (`mlatlas.core.ensemble.make_ensemble`). Replicate r's model is built after
``rep.seed_torch(key)``, so two arms with the same architecture start from the same weights in
the same replicate and differ only in what the claim is about; replicate r also draws its own
minibatch order from ``rep.rng("batches")``, the same stream in every arm (common random
numbers for the paired comparisons; `mlatlas.core.ensemble.member_batches`).
"""

from __future__ import annotations

import torch


def hidden_preactivations(model: torch.nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Pre-activations z_l of every hidden layer of an MLP, for input x."""
    out, h = [], x
    layers = list(model)
    for i, layer in enumerate(layers):
        h = layer(h)
        if isinstance(layer, torch.nn.Linear) and i < len(layers) - 1:
            out.append(h)
    return out
