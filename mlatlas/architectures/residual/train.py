"""What the labs of this topic share: the images, and SGD on replicates stacked as one net.

`train_group` trains one net per replicate, all at once (`residual.grouped`): member r is
initialised from replicate r's seed (``rep.seed_torch("init", key)``: two arms built with the
same key and the same architecture start from the same weights) and sees its own batch
order (``rep.rng("batches")``: the same for every arm of replicate r, so paired arms differ
only by what the claim is about).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.residual.grouped import Grouped
from mlatlas.core.data import Split, image_classification
from mlatlas.core.seeding import Replicate, fixed_rng
from mlatlas.core.train import batches_for_steps, fit

__all__ = ["group_accuracy", "small_images", "train_group"]


def small_images(cfg: Any) -> Split:
    """``cfg.dataset`` at ``cfg.size`` x ``cfg.size``; the training subset and the test
    subset (``cfg.n_test``) are fixed data: they do not change with --seed."""
    return image_classification(
        cfg.dataset,
        fixed_rng("residual", "images"),
        n_train=cfg.n_train,
        n_test=cfg.get("n_test"),
        flatten=False,
        size=cfg.size,
    )


def train_group(
    build: Callable[[], nn.Module],
    reps: Sequence[Replicate],
    data: Split,
    cfg: Any,
    *,
    key: object,
    ctx: Any = None,
    desc: str = "train",
) -> tuple[Grouped, np.ndarray]:
    """SGD with momentum 0.9, weight decay 1e-4 and a cosine-decayed lr (as He et al. 2016
    train, shorter) for ``cfg.steps`` steps of ``cfg.batch`` images, one net per replicate.

    Returns the trained group (eval mode) and which members diverged."""
    models = []
    for rep in reps:
        rep.seed_torch("init", key)
        models.append(build())
    group = Grouped(models)
    n = len(data.x_train)
    streams = [batches_for_steps(n, cfg.batch, cfg.steps, rep.rng("batches")) for rep in reps]
    opt = torch.optim.SGD(group.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=1e-4)

    def loss_fn(model: nn.Module, idx: tuple[torch.Tensor, ...]) -> torch.Tensor:
        i = torch.stack(idx)  # (R, B): member r's minibatch
        logits = model(data.x_train[i])  # (R, B, classes)
        ce = F.cross_entropy(logits.flatten(0, 1), data.y_train[i].flatten(), reduction="none")
        return ce.view(len(idx), -1).mean(1)

    def cosine(t: int) -> float:
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t / cfg.steps))

    batches = zip(*streams, strict=True)
    result = fit(group, opt, loss_fn, batches, cfg.steps, ctx=ctx, desc=desc, schedule=cosine)
    return group.eval(), np.broadcast_to(result.diverged, (len(reps),)).copy()


@torch.no_grad()
def group_accuracy(
    group: nn.Module, x: torch.Tensor, y: torch.Tensor, diverged: np.ndarray, batch: int = 1000
) -> np.ndarray:
    """Accuracy of every member on (x, y); NaN for a member whose training diverged."""
    correct = torch.zeros(group.size)
    for i in range(0, len(x), batch):
        out = group(x[i : i + batch])  # (R, b, classes)
        correct += (out.argmax(-1) == y[i : i + batch]).sum(1)
    acc = (correct / len(x)).double().cpu().numpy()
    acc[diverged] = np.nan
    return acc
