"""Lab: an order task that self-attention can solve only with position encodings."""

from __future__ import annotations

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


@lab("transformers", insights=["positional encoding"])
def position_matters(ctx: Lab) -> None:
    """Without position encodings self-attention cannot see order; with them it can.

    Attention with no positions is permutation-equivariant (a check: it follows from the
    algebra, so it is verified on one random encoder rather than measured), so with mean
    pooling the output is a function of the set of tokens. The task asks whether token 0
    comes before token 1: the same set either way. Each encoding trains its replicates as one
    batched ensemble; the replicates of every encoding share initialisation seeds and batch
    streams. A run that diverges counts at chance, 0.5. The default scale trains 500 steps
    (the single-seed version trained 1500; five replicates of four encodings at 1500 steps
    would cost over two minutes of the 2-core CPU).
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
        seeds=per_scale(2, 5, 10),
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
    chance = ctx.claim(
        "With no position encoding the order task stays at chance (accuracy <= 0.55)",
        quantity=f"test accuracy on {cfg.n_test} fixed sequences, no position encoding",
        direction="<",
        margin=0.55,
        on_failure=0.5,
    )
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
    for rep in reps:
        chance.add(rep.id, acc["none"][rep.id])
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
