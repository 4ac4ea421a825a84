"""The network the labs transfer: an MLP trunk (the features) and one linear head per task.

``forward`` returns the logits of every head side by side, so one module serves a source task
and a target task at once and a batched ensemble (`mlatlas.core.ensemble`) can train it;
`head` picks one task's columns. Layer ``i`` of the trunk is ``trunk.i`` (Yosinski et al. 2014
copy "the first n layers").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn


class TransferMLP(nn.Module):
    """x -> ReLU(W_1 x) -> ... -> ReLU(W_L h) = features; then one linear head per task."""

    def __init__(self, n_in: int, hidden: Sequence[int], heads: Sequence[int]) -> None:
        super().__init__()
        sizes = [n_in, *hidden]
        self.trunk = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.heads = nn.ModuleList(nn.Linear(sizes[-1], c) for c in heads)
        self.head_sizes = tuple(heads)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.trunk:
            x = torch.relu(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return torch.cat([head(h) for head in self.heads], dim=-1)

    def head(self, task: int) -> slice:
        """The columns of ``forward``'s output that hold task `task`'s logits."""
        start = sum(self.head_sizes[:task])
        return slice(start, start + self.head_sizes[task])

    def layer_names(self) -> list[str]:
        """Module prefixes from input to output: trunk.0, ..., trunk.{L-1}, heads.0, ..."""
        return [f"trunk.{i}" for i in range(len(self.trunk))] + [
            f"heads.{i}" for i in range(len(self.heads))
        ]
