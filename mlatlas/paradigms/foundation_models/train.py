"""Training helpers the labs of topic 11 share: GPT replicates as one batched ensemble.

`gpt_ensemble` builds R copies of topic 7's GPT, each initialised from its replicate's seed;
`member_lm_loss` is each member's next-token cross-entropy, optionally only on the positions a
mask selects (the answer of a task, not its prompt); `train_lm` is the recipe (AdamW, decoupled
weight decay on matrices, linear warmup then cosine decay, per-member gradient-norm clip 1)
run through `fit`. `member_scores` reads each member's per-position log-likelihood and
argmax on fixed sequences, from which the labs compute their metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.architectures.transformers.train import clip_members
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import FitResult, fit
from mlatlas.foundations.optim.schedules import warmup_cosine


def gpt_ensemble(cfg: GPTConfig, reps: Sequence[Replicate], key: str = "init") -> Ensemble:
    """One GPT per replicate, initialised after ``rep.seed_torch(key)``, stacked."""
    models = []
    for rep in reps:
        rep.seed_torch(key)
        models.append(GPT(cfg))
    return Ensemble(models)  # the head stays tied to the embedding in every member


def member_lm_loss(
    ens: Ensemble, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-member mean next-token cross-entropy, shape (R,), for per-member batches
    x, y of shape (R, B, T); `mask` (R, B, T) keeps only the positions it marks."""
    logits = ens(x, per_member=True)
    ce = F.cross_entropy(logits.flatten(0, 2), y.flatten(), reduction="none").view(y.shape)
    if mask is None:
        return ce.flatten(1).mean(1)
    m = mask.to(ce.dtype)
    return (ce * m).flatten(1).sum(1) / m.flatten(1).sum(1)


def train_lm(
    ens: Ensemble,
    batches: Iterator[tuple[torch.Tensor, ...]],
    steps: int,
    lr: float,
    *,
    ctx: Any = None,
    desc: str = "train",
    warmup: float = 0.05,
    weight_decay: float = 0.1,
    evaluate: Callable[[int], Any] | None = None,
    eval_every: int = 0,
) -> FitResult:
    """AdamW with warmup-cosine and a per-member clip; a batch is (x, y) or (x, y, mask)."""
    decay = [p for p in ens.parameters() if p.dim() >= 3]  # stacked matrices: (R, out, in)
    no_decay = [p for p in ens.parameters() if p.dim() < 3]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=lr,
        betas=(0.9, 0.99),
    )
    clip_members(ens, opt, 1.0)
    schedule = warmup_cosine(lr, max(1, int(warmup * steps)), steps, 0.01, lr / 10)
    return fit(
        ens,
        opt,
        lambda m, b: member_lm_loss(m, *b),
        batches,
        steps,
        ctx=ctx,
        desc=desc,
        schedule=schedule,
        log_every=max(1, steps // 10),
        evaluate=evaluate,
        eval_every=eval_every,
        eval_last=evaluate is not None,
    )


@torch.no_grad()
def member_scores(
    ens: Ensemble, x: torch.Tensor, y: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's log-probability of the target and whether its argmax is the target, at
    every position of the shared sequences x, y (N, T): two tensors of shape (R, N, T)."""
    logp, hit = [], []
    for i in range(0, len(x), chunk):
        z = F.log_softmax(ens(x[i : i + chunk]), dim=-1)
        t = y[i : i + chunk].expand(z.shape[0], -1, -1)
        logp.append(z.gather(-1, t[..., None])[..., 0])
        hit.append(z.argmax(-1) == t)
    return torch.cat(logp, 1), torch.cat(hit, 1)
