"""Choosing a lab's setting on validation scores, never on the test set.

`choose_adaptation` picks the texture strength of the domain-adaptation lab and each arm's
optimizer from a grid, given only the grid's mean validation accuracies. It receives numbers,
not data: the test split cannot reach it. The rule is fixed before anything is measured:

1. per texture strength c and arm a, the optimizer with the higher mean target-validation
   accuracy (the first in grid order on a tie): each arm runs its best recipe;
2. the texture strength is the strongest c at which the target domain is still learnable:
   the target oracle's validation accuracy (with its step-1 optimizer) reaches `learnable`
   times the best accuracy the source-only network reaches on clean source validation
   images (over the optimizers: how well this network reads undisturbed digits). If no
   strength qualifies, the weakest.

A NaN score (a member that diverged) counts as 0: a network that diverged classifies nothing,
and a grid point must not win because its failures were dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Scores = Mapping[tuple[float, str, str], tuple[float, float]]


@dataclass
class Choice:
    contrast: float
    optimizer: dict[str, str]  # arm -> optimizer name
    rows: list[dict[str, Any]] = field(default_factory=list)  # the grid, with 'chosen'


def _score(x: float) -> float:
    return 0.0 if math.isnan(x) else float(x)


def choose_adaptation(
    scores: Scores,
    contrasts: Sequence[float],
    optimizers: Sequence[str],
    arms: Sequence[str],
    learnable: float,
    oracle: str = "target_oracle",
    source_only: str = "source_only",
) -> Choice:
    """scores[(contrast, optimizer, arm)] = (target-validation accuracy, source-validation
    accuracy), each the mean over seeds; the rule of the module docstring."""
    best: dict[tuple[float, str], str] = {}
    for c in contrasts:
        for a in arms:
            ranked = [(-_score(scores[(c, o, a)][0]), i, o) for i, o in enumerate(optimizers)]
            best[(c, a)] = min(ranked)[2]
    clean = {c: max(_score(scores[(c, o, source_only)][1]) for o in optimizers) for c in contrasts}
    ok = [
        c
        for c in contrasts
        if _score(scores[(c, best[(c, oracle)], oracle)][0]) >= learnable * clean[c]
    ]
    chosen = max(ok) if ok else min(contrasts)
    rows = [
        {
            "contrast": c,
            "optimizer": o,
            "arm": a,
            "target_val_acc": scores[(c, o, a)][0],
            "source_val_acc": scores[(c, o, a)][1],
            "best_optimizer_for_arm": best[(c, a)] == o,
            "learnable": c in ok,
            "chosen": c == chosen and best[(c, a)] == o,
        }
        for c in contrasts
        for o in optimizers
        for a in arms
    ]
    return Choice(chosen, {a: best[(chosen, a)] for a in arms}, rows)
