"""Lab: what a one-layer encoder trained to reverse its input attends to."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import Encoder
from mlatlas.core import Ensemble, Lab, fit, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.core.ensemble import member_batches


class Reverser(nn.Module):
    """Embeddings, one encoder block with learned positions, a per-position linear head."""

    def __init__(self, vocab: int, d: int, heads: int, length: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = Encoder(d, heads, 1, length, "learned")
        self.head = nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor, keep_weights: bool = False) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x), keep_weights=keep_weights))


def mirror_weight(w: torch.Tensor) -> tuple[float, float]:
    """(min, mean) over query positions i of w[i, T - 1 - i], the weight query i puts on its
    mirror key, for a (T, T) attention map: the min is the claim's quantity."""
    on_mirror = w.flip(1).diagonal()  # (T,)
    return float(on_mirror.min()), float(on_mirror.mean())


@lab("transformers", insights=["Query-key-value attention"])
def attention_maps(ctx: Lab) -> None:
    """What attention learns to look at: an encoder trained to output each sequence reversed
    should attend from position i to position T - 1 - i.

    The replicates train as one batched ensemble, each on its own batch stream; the
    attention weights are then read from each replicate (our attention implementation keeps
    them) on fixed test sequences. The claim is about each query, so its quantity is per
    replicate the *smallest* over query positions i of the weight on key T - 1 - i (averaged
    over the test sequences): above 0.5 only if every query puts most of its attention on its
    mirror. (A mean over queries could pass with some queries looking elsewhere.) A run that
    diverges counts as uniform attention, 1/T, against the claim.
    """
    cfg = ctx.config(
        length=per_scale(8, 12, 16),
        vocab=16,
        d=32,
        heads=1,
        steps=per_scale(150, 1500, 4000),
        batch=64,
        lr=2e-3,
        n_test=500,
        seeds=per_scale(2, 5, 10),
    )
    ctx.dataset(record("reverse_task", vocab=cfg.vocab, length=cfg.length))
    claim = ctx.claim(
        "Trained to reverse, the encoder puts most of each query's attention on the mirror "
        "position T - 1 - i (weight > 0.5 for every query position i)",
        quantity=f"min over query positions i of the attention weight on key T - 1 - i, "
        f"averaged over {cfg.n_test} fixed test sequences",
        direction=">",
        margin=0.5,
        on_failure=1 / cfg.length,
    )
    reps = list(ctx.replicates(cfg.seeds))
    models = []
    for rep in reps:
        rep.seed_torch("init")
        models.append(Reverser(cfg.vocab, cfg.d, cfg.heads, cfg.length))
    ens = Ensemble(models)

    def draw(g: torch.Generator) -> tuple[torch.Tensor]:
        return (torch.randint(0, cfg.vocab, (cfg.batch, cfg.length), generator=g),)

    def loss_fn(m: Ensemble, batch) -> torch.Tensor:
        (x,) = batch
        logits = m(x, per_member=True)
        ce = F.cross_entropy(
            logits.reshape(-1, cfg.vocab), x.flip(-1).reshape(-1), reduction="none"
        )
        return ce.view(len(reps), -1).mean(1)

    res = fit(
        ens,
        torch.optim.Adam(ens.parameters(), lr=cfg.lr),
        loss_fn,
        member_batches([rep.generator("batches") for rep in reps], draw),
        cfg.steps,
        ctx=ctx,
        desc="steps",
        log_every=100,
    )
    diverged = np.atleast_1d(res.diverged)
    x = torch.randint(0, cfg.vocab, (cfg.n_test, cfg.length), generator=fixed_generator("rev"))
    rows, maps = [], []
    for rep in reps:
        model = ens.member(rep.id).eval()
        with torch.no_grad():
            out = model(x, keep_weights=True)
        w = model.encoder.blocks[0].last_weights.mean(0)  # (T, T), averaged over examples
        maps.append(w.cpu().numpy())
        weakest, mirror = mirror_weight(w)
        acc = float((out.argmax(-1) == x.flip(1)).double().mean())
        if diverged[rep.id]:
            weakest = mirror = acc = float("nan")
        claim.add(rep.id, weakest)
        rows.append(
            {
                "replicate": rep.id,
                "token_accuracy": acc,
                "min_weight_on_mirror_over_queries": weakest,
                "mean_weight_on_mirror_over_queries": mirror,
                "uniform_weight": 1 / cfg.length,
            }
        )
    ctx.metric("mean_token_accuracy", float(np.nanmean([r["token_accuracy"] for r in rows])))
    ctx.table(
        "attention",
        rows,
        note=f"{cfg.steps} Adam steps, batch {cfg.batch}; weights averaged over "
        f"{cfg.n_test} fixed test sequences",
    )
    fig, ax = new_figure(1, 2, size=(9, 4))
    im = ax[0, 0].imshow(maps[0], cmap="viridis", vmin=0, vmax=1)
    ax[0, 0].set(xlabel="key position", ylabel="query position", title="replicate 0")
    ax[0, 0].grid(False)
    fig.colorbar(im, ax=ax[0, 0])
    per_query = np.stack([np.flip(m, 1).diagonal() for m in maps])  # (R, T)
    for r, row in enumerate(per_query):
        ax[0, 1].plot(row, "o-", alpha=0.7, label=f"replicate {r}" if r < 5 else None)
    ax[0, 1].axhline(1 / cfg.length, color="gray", ls="--", label="uniform")
    ax[0, 1].set(xlabel="query position i", ylabel="weight on key T - 1 - i", ylim=(0, 1.02))
    ax[0, 1].legend(fontsize=7)
    ctx.figure(
        "attention_map",
        fig,
        f"Attention of the reversing encoder averaged over {cfg.n_test} inputs (left), and the "
        "weight each query puts on its mirror position in every replicate (right).",
    )
