"""Lab: an order task that self-attention can solve only with position encodings."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import Encoder
from mlatlas.core import Ensemble, Lab, fit, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.core.ensemble import member_batches


class OrderClassifier(nn.Module):
    """Token embeddings, a bidirectional encoder, mean pooling, a two-way linear head."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, positions: str, max_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = Encoder(d, heads, layers, max_len, positions)
        self.head = nn.Linear(d, 2)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(idx)).mean(1))


def order_task(n: int, length: int, vocab: int, gen: torch.Generator):
    """Sequences of filler tokens 2.. with one token 0 and one token 1 at two distinct random
    positions; label: does 0 come before 1? The multiset of tokens is the same either way, so
    only order can tell."""
    x = torch.randint(2, vocab, (n, length), generator=gen)
    pos = torch.rand(n, length, generator=gen).argsort(dim=1)[:, :2]
    rows = torch.arange(n)
    x[rows, pos[:, 0]] = 0
    x[rows, pos[:, 1]] = 1
    return x, (pos[:, 0] < pos[:, 1]).long()


def swap_marks(x: torch.Tensor) -> torch.Tensor:
    """Each sequence with its tokens 0 and 1 exchanged: the same multiset, the other label."""
    return torch.where(x == 0, 1, torch.where(x == 1, 0, x))


@torch.no_grad()
def twin_disagreement(model: nn.Module, x: torch.Tensor) -> float:
    """Fraction of sequences on which `model` (run in float64) predicts another class for the
    sequence and for its twin with 0 and 1 exchanged; NaN if an output is not finite.

    A model whose output depends only on the token multiset predicts alike on the twins, so it
    is right on exactly one of each pair: its accuracy over the pairs is 1/2 exactly, and on
    the plain test set, whose labels are fair coins given the multiset, Binomial(n, 1/2) / n.
    """
    m = copy.deepcopy(model).double().eval()
    a, b = m(x), m(swap_marks(x))
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("nan")
    return float((a.argmax(-1) != b.argmax(-1)).double().mean())


@lab("transformers", insights=["positional encoding"])
def position_matters(ctx: Lab) -> None:
    """Without position encodings self-attention cannot see order; with them it can.

    Attention with no positions is permutation-equivariant (a check: it follows from the
    algebra, so it is verified on one random encoder rather than measured), so with mean
    pooling the output is a function of the multiset of tokens. The task asks whether token 0
    comes before token 1: the same multiset either way, and given the multiset the label is a
    fair coin. So "without positions, chance" is not an experiment: whatever the weights, the
    accuracy is Binomial(n, 1/2) / n. What can fail is the premise on the trained models, so it
    is a check: every trained no-position replicate predicts the same class for each test
    sequence and for its twin with 0 and 1 exchanged (same multiset, opposite label), which
    makes it right on exactly one of each pair. A model with positions fails it (the test
    feeds one); a diverged replicate has no finite output and fails it too.

    The experiment is the other half: every encoding solves the task (accuracy > 0.9). Each
    encoding trains its replicates as one batched ensemble; the replicates of every encoding
    share initialisation seeds and batch streams. A run that diverges counts at chance, 0.5,
    against the claim. Accuracies can tie at 1.0, where only the sign test decides
    (p = 2^-n), so the default scale has 8 replicates (6 is the least that can decide). It
    trains 500 steps (eight replicates of four encodings at 1500 steps would cost several
    minutes of the 2-core CPU).
    """
    cfg = ctx.config(
        length=per_scale(12, 16, 32),
        vocab=12,
        d=32,
        heads=4,
        layers=2,
        steps=per_scale(60, 500, 5000),
        batch=64,
        lr=1e-3,
        positions=["none", "learned", "sinusoidal", "rope"],
        n_test=per_scale(500, 2000, 4000),
        seeds=per_scale(2, 8, 10),
    )
    ctx.dataset(record("order_task", length=cfg.length, vocab=cfg.vocab))

    ctx.seed_torch("equivariance")
    enc = Encoder(cfg.d, cfg.heads, cfg.layers, cfg.length, "none").double().eval()
    x = torch.randn(4, cfg.length, cfg.d, dtype=torch.float64)
    perm = torch.randperm(cfg.length)
    with torch.no_grad():
        err = (enc(x)[:, perm] - enc(x[:, perm])).abs().max().item()
    ctx.check(
        "Without position encodings, self-attention is permutation-equivariant: permuting the "
        "input permutes the output (max |difference| < 1e-10)",
        err,
        direction="<",
        bound=1e-10,
        quantity="max |enc(x)[perm] - enc(x[perm])| over 4 random float64 sequences",
    )

    encodings = [p for p in cfg.positions if p != "none"]
    solved = ctx.claim(
        "Every position encoding (" + ", ".join(encodings) + ") solves it: accuracy >= 0.9 "
        "for each",
        quantity=f"test accuracy on {cfg.n_test} fixed sequences; one part per encoding",
        direction=">",
        margin=0.9,
        on_failure=0.5,
    )
    x_te, y_te = order_task(cfg.n_test, cfg.length, cfg.vocab, fixed_generator("order_task"))
    reps = list(ctx.replicates(cfg.seeds))
    twins = [math.nan]  # fails the check unless the no-position models are measured
    acc: dict[str, np.ndarray] = {}
    curves = {}
    for positions in cfg.positions:
        models = []
        for rep in reps:
            rep.seed_torch("init")
            models.append(
                OrderClassifier(cfg.vocab, cfg.d, cfg.heads, cfg.layers, positions, cfg.length)
            )
        ens = Ensemble(models)

        def loss_fn(m: Ensemble, batch) -> torch.Tensor:
            x, y = batch
            logits = m(x, per_member=True)
            ce = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="none")
            return ce.view(len(reps), -1).mean(1)

        gens = [rep.generator("batches") for rep in reps]
        res = fit(
            ens,
            torch.optim.Adam(ens.parameters(), lr=cfg.lr),
            loss_fn,
            member_batches(gens, lambda g: order_task(cfg.batch, cfg.length, cfg.vocab, g)),
            cfg.steps,
            ctx=ctx,
            desc=positions,
        )
        curves[positions] = res.losses
        with torch.no_grad():
            a = (ens(x_te).argmax(-1) == y_te).double().mean(1).cpu().numpy()
        a[np.atleast_1d(res.diverged)] = np.nan
        acc[positions] = a
        ctx.log(step=None, positions=positions, mean_test_accuracy=float(np.nanmean(a)))
        if positions == "none":  # a diverged replicate has no prediction to compare
            twins = [
                math.nan if np.isnan(a[r]) else twin_disagreement(ens.member(r), x_te)
                for r in range(len(reps))
            ]
    ctx.check(
        "Without positions every trained replicate predicts the same class for each test "
        "sequence and its twin with 0 and 1 exchanged (same multiset, opposite label): it is "
        "right on exactly one of each pair, so its accuracy is chance by construction",
        max(twins) if not np.isnan(twins).any() else float("nan"),
        direction="<=",
        bound=0.0,
        quantity=f"largest fraction of the {cfg.n_test} test twins predicted differently "
        "(float64), over the no-position replicates",
    )
    for rep in reps:
        for p in encodings:
            solved.add(rep.id, acc[p][rep.id], part=p)
    ctx.table(
        "order_task",
        [
            {
                "positions": p,
                "mean_test_accuracy": float(np.nanmean(acc[p])),
                "min": float(np.nanmin(acc[p])),
                "max": float(np.nanmax(acc[p])),
                "diverged": int(np.isnan(acc[p]).sum()),
            }
            for p in cfg.positions
        ],
        note=f"{cfg.steps} Adam steps, batch {cfg.batch}, {cfg.seeds} replicates each; "
        "chance is 0.5",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.4))
    for i, p in enumerate(cfg.positions):
        ax[0, 0].bar(i, np.nanmean(acc[p]), color=f"C{i}")
        ax[0, 0].plot([i] * len(acc[p]), acc[p], "k.", alpha=0.6)
        smooth = np.convolve(curves[p].mean(1), np.ones(20) / 20, mode="valid")
        ax[0, 1].plot(smooth, color=f"C{i}", label=p)
    ax[0, 0].set_xticks(range(len(cfg.positions)), cfg.positions)
    ax[0, 0].axhline(0.5, color="gray", ls="--")
    ax[0, 0].set(ylim=(0.4, 1.02), ylabel="test accuracy", title="does 0 come before 1?")
    ax[0, 1].set(xlabel="step", ylabel="training loss (mean over replicates)", yscale="log")
    ax[0, 1].legend()
    ctx.figure(
        "positions",
        fig,
        "Order-task test accuracy by position encoding (bars: mean; dots: replicates) and the "
        "training loss.",
    )
