"""Training helpers the labs share: source pretraining of one network per replicate as a
batched ensemble, per-member accuracy on one head, and moving
pretrained members into a new ensemble whose members are the arms of a comparison.

A member of an ensemble is one (arm, replicate) pair; members of one replicate draw their
minibatches from the same stream (``rep.rng(key)``), so the arms of a paired comparison see
the same data in the same order and differ only in what the claim is about.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from mlatlas.core.ensemble import (
    Ensemble,
    make_ensemble,
    member_batches,
    member_cross_entropy,
    member_outputs,
)
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import FitResult, batches_for_steps, fit
from mlatlas.paradigms.transfer.finetune import mask_members
from mlatlas.paradigms.transfer.models import TransferMLP


@torch.no_grad()
def head_accuracy(ens: Ensemble, x: torch.Tensor, y: torch.Tensor, cols: slice) -> np.ndarray:
    """Accuracy of each member's head `cols` on (x, y), shape (R,); NaN where the outputs
    are not finite (a diverged member has no accuracy of its own)."""
    z = member_outputs(ens, x)[..., cols]
    acc = (z.argmax(-1) == y).double().mean(1).cpu().numpy()
    finite = torch.isfinite(z).flatten(1).all(1).cpu().numpy()
    return np.where(finite, acc, np.nan)


def pretrain(
    reps: Sequence[Replicate],
    x: torch.Tensor,
    y: torch.Tensor,
    build: Callable[[], TransferMLP],
    steps: int,
    batch: int,
    lr: float,
    ctx=None,
    desc: str = "pretrain",
) -> tuple[Ensemble, FitResult]:
    """One network per replicate (init from ``rep.seed_torch("init")``), trained with Adam
    on head 0 for `steps` minibatches of (x, y); the other heads keep their initialisation."""
    ens = make_ensemble(lambda _: build(), len(reps), lambda r: reps[r].seed_torch("init"))
    mask_members(ens, lambda r, name: not name.startswith("heads.") or name.startswith("heads.0"))
    cols = ens.base.head(0)
    opt = torch.optim.Adam([p for p in ens.parameters() if p.requires_grad], lr=lr)
    batches = member_batches(
        [batches_for_steps(len(x), batch, steps, rep.rng("pretrain-batches")) for rep in reps]
    )

    def loss_fn(m: Ensemble, idx: torch.Tensor) -> torch.Tensor:
        return member_cross_entropy(m(x[idx], per_member=True)[..., cols], y[idx])

    res = fit(ens, opt, loss_fn, batches, steps, ctx=ctx, desc=desc, log_every=100)
    return ens, res


def arms_from(
    pretrained: Ensemble,
    arms: Sequence[str],
    fresh: Callable[[str, int], nn.Module | None] = lambda a, r: None,
    prepare: Callable[[str, int, nn.Module], nn.Module] = lambda a, r, m: m,
) -> tuple[Ensemble, list[tuple[str, int]]]:
    """An ensemble with one member per (arm, replicate), arm-major: member (a, r) starts
    from ``fresh(a, r)`` if that returns a module, else from pretrained member r, and is
    passed through ``prepare(a, r, module)`` (e.g. to add LoRA adapters to every member,
    so that all have one architecture)."""
    members, keys = [], []
    for a in arms:
        for r in range(pretrained.size):
            m = fresh(a, r)
            m = m if m is not None else copy.deepcopy(pretrained.member(r))
            members.append(prepare(a, r, m).train())  # stacking needs one mode
            keys.append((a, r))
    return Ensemble(members), keys
