"""Lab: remove one block of a trained net at test time (Veit et al. 2016)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mlatlas.architectures.residual.blocks import BasicBlock, CifarResNet
from mlatlas.architectures.residual.train import group_accuracy, small_images, train_group
from mlatlas.core import Lab, lab, new_figure, per_scale

KINDS = ("plain", "residual")


class Lesioned(nn.Module):
    """Skips one block: a residual block becomes its shortcut, a plain block the identity."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.block.shortcut(x)) if self.block.residual else x


@lab("residual", insights=["Identity mappings"])
def lesion(ctx: Lab) -> None:
    """Remove one block at test time: residual nets degrade gracefully, plain nets collapse.

    Veit, Wilber & Belongie (2016) deleted single blocks of a trained ResNet and saw small
    losses, but chance-level accuracy for a plain net (the unraveled view: a ResNet behaves
    like an ensemble of many paths of different lengths). Here every non-downsampling block
    of a trained plain and residual net (same initial weights and batch order per seed) is
    removed in turn; per seed, the accuracy lost is averaged over blocks, and the claims
    test those per-seed means over seeds.

    Changed in the port: the old intervals treated every (block, seed) pair as a sample;
    the unit is now the seed (blocks of one net are not independent replicates).

    A net whose training diverged has no intact accuracy to lose, so its drop is undefined:
    the seed is counted as failed and the claims say nothing about what it counts as (the
    core then reports them inconclusive, with the seed ids). An earlier version counted such
    a net as losing nothing, which favoured the first claim whenever the residual net was
    the one that diverged.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "fashion-mnist", "fashion-mnist"),
        n_train=per_scale(None, 20000, None),
        n_test=per_scale(None, 2000, None),
        size=per_scale(8, 14, 28),
        n=per_scale(2, 3, 9),
        widths=[8, 16, 32],
        steps=per_scale(100, 500, 5000),
        batch=per_scale(64, 64, 128),
        lr=0.05,
        seeds=per_scale(3, 5, 10),
    )
    data = small_images(cfg)
    ctx.dataset(data.record)
    ctx.note("Convolutions computed with torch kernels (proven equal to cnn.conv2d).")
    layers = 6 * cfg.n + 2
    what = (
        f"test accuracy lost when one non-downsampling block of a trained {layers}-layer net "
        f"is removed, mean over those blocks, on {len(data.x_test)} test images"
    )
    less = ctx.claim(
        "Removing a single block costs the residual net less accuracy than the plain net "
        "(mean over blocks)",
        quantity=f"{what}; a = plain, b = residual",
        direction=">",
        margin=0.0,
        paired=True,
    )
    within = ctx.claim(
        "The residual net keeps its accuracy within 10 points when one block is removed "
        "(mean over blocks)",
        quantity=f"{what}, residual net",
        direction="<",
        margin=0.10,
    )
    reps = list(ctx.replicates(cfg.seeds))
    rows = []
    drops: dict[str, np.ndarray] = {}  # kind -> (seeds, blocks)
    lesioned_blocks: list[int] = []
    for kind in KINDS:
        group, diverged = train_group(
            lambda kind=kind: CifarResNet(
                cfg.n, tuple(cfg.widths), data.n_classes, residual=kind == "residual"
            ),
            reps,
            data,
            cfg,
            key="init",  # same key for both kinds: same initial weights
            ctx=ctx,
            desc=f"{kind} {layers} layers",
        )
        base = group_accuracy(group, data.x_test, data.y_test, diverged)
        blocks = group.net.blocks
        lesioned_blocks = [i for i, b in enumerate(blocks) if b.f[0].stride == (1, 1)]
        per_block = []
        for i in ctx.progress(lesioned_blocks, desc=f"lesions {kind}"):
            block = blocks[i]
            blocks[i] = Lesioned(block)  # a downsampling block has no identity: kept
            acc = group_accuracy(group, data.x_test, data.y_test, diverged)
            blocks[i] = block
            per_block.append(base - acc)
            rows += [
                {"seed": rep.id, "kind": kind, "block": i, "intact_acc": b, "lesioned_acc": a}
                for rep, b, a in zip(reps, base, acc, strict=True)
            ]
        drops[kind] = np.stack(per_block, axis=1)
        ctx.log(step=len(drops), kind=kind, mean_drop=float(np.nanmean(drops[kind])))
    mean_drop = {k: d.mean(axis=1) for k, d in drops.items()}  # per seed (NaN if diverged)
    for i, rep in enumerate(reps):
        less.add(rep.id, mean_drop["plain"][i], mean_drop["residual"][i])
        within.add(rep.id, mean_drop["residual"][i])
    ctx.table(
        "lesions",
        rows,
        note=f"{layers}-layer nets, {cfg.seeds} seeds; one non-downsampling block removed at a "
        "time",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for j, (kind, d) in enumerate(drops.items()):
        ax[0, 0].plot(lesioned_blocks, np.nanmean(d, axis=0), "o-", color=f"C{j}", label=kind)
        for s in range(len(reps)):
            ax[0, 0].plot(lesioned_blocks, d[s], ".", color=f"C{j}", alpha=0.4)
    ax[0, 0].set(xlabel="block removed", ylabel="accuracy lost", title="lesion study (dots: seeds)")
    ax[0, 0].legend()
    ctx.figure("lesion", fig, "Accuracy lost when a single block is removed at test time.")
