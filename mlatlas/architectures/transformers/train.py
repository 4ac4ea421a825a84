"""Training recipes shared by the labs and the benchmarks of topic 7.

`train_char_gpt` is the character-GPT recipe (AdamW with decoupled weight decay on matrices
only, linear warmup then cosine decay, gradient-norm clip 1, optional bf16 autocast on CPU)
used by the `char_gpt` lab and by ``benchmarks/charlm.py``; `CHAR_GPT_SETTINGS` are its
(smoke, default, full) settings. `val_losses` scores a model on fixed validation windows.
`member_batches` feeds a batched `Ensemble` one batch per member, each from that member's
own generator, and `clip_members` clips each member's gradient norm on its own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core.data import CharCorpus
from mlatlas.core.ensemble import Ensemble, clip_members_
from mlatlas.core.seeding import fixed_generator
from mlatlas.core.train import fit
from mlatlas.foundations.optim.schedules import warmup_cosine

CHAR_GPT_SETTINGS: dict[str, Any] = dict(
    corpus=("guide", "tinyshakespeare", "tinyshakespeare"),
    block=(32, 128, 256),
    n_layer=(2, 4, 6),
    n_head=4,
    n_embd=(64, 128, 384),
    dropout=(0.0, 0.0, 0.2),
    batch=(16, 32, 64),
    steps=(60, 1200, 5000),
    lr=(3e-3, 2e-3, 1e-3),
    eval_every=(30, 100, 250),
    eval_batches=(4, 10, 50),
    final_batches=(8, 40, 100),
    kernel="torch",
    bf16=False,  # bf16 autocast measured ~20% slower than float32 on this 2-core AVX-512 CPU
)


def member_batches(
    gens: Sequence[torch.Generator], draw: Callable[[torch.Generator], tuple[torch.Tensor, ...]]
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless batches for an R-member ensemble: member r's batch is ``draw(gens[r])``; the
    tensors are stacked on a leading axis of size R (use with ``per_member=True``)."""
    while True:
        parts = [draw(g) for g in gens]
        yield tuple(torch.stack(p) for p in zip(*parts, strict=True))


def clip_members(ens: Ensemble, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip each ensemble member's gradient to global norm `max_norm` before every step of
    `optimizer`: the per-member equivalent of ``clip_grad_norm_`` (a clip over the stacked
    tensors would couple the members), so the ensemble still performs R independent runs."""

    def hook(*_: Any) -> None:
        clip_members_(ens.parameters(), max_norm)

    optimizer.register_step_pre_hook(hook)


def _loss(model: GPT, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def val_losses(model: GPT, corpus: CharCorpus, cfg: Any, n_batches: int) -> list[float]:
    """Cross-entropy (nats/char) of each of `n_batches` validation batches; the windows are
    fixed (drawn from `fixed_generator`), so every run and every evaluation sees the same."""
    was_training = model.training
    model.eval()
    g = fixed_generator("char_gpt", "val", cfg.batch, cfg.block)
    out = [
        _loss(model, *corpus.batch("val", cfg.batch, cfg.block, g), cfg.bf16).item()
        for _ in range(n_batches)
    ]
    model.train(was_training)
    return out


def train_char_gpt(
    cfg: Any,
    corpus: CharCorpus,
    gen: torch.Generator,
    ctx: Any = None,
    budget_s: float | None = None,
) -> tuple[GPT, list[tuple[int, float, float]]]:
    """Train a GPT on a character corpus with `fit`; batches come from `gen`, the
    initialisation from the global generators (the caller seeds them). `ctx` (a `Lab`, or
    None) shows progress and logs losses. Returns the model and its curve of
    (step, seconds, mean validation loss over ``cfg.eval_batches`` fixed batches)."""
    gcfg = GPTConfig(
        vocab=len(corpus.vocab),
        block_size=cfg.block,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        positions="learned",
        kernel=cfg.kernel,
    )
    model = GPT(gcfg)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.99),
    )

    def clip(*_: Any) -> None:  # the recipe clips the global gradient norm to 1 before a step
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    opt.register_step_pre_hook(clip)
    schedule = warmup_cosine(
        cfg.lr, cfg.steps // 20, cfg.steps, start_factor=0.01, eta_min=cfg.lr / 10
    )
    # Seconds are wall clock, so not part of a result that resumes to the same numbers: each
    # evaluation records the seconds since the previous one in this process, and the curve
    # sums them (a resumed run then counts the time it trained, not the time it was dead).
    clock = [time.perf_counter()]
    last = [float("nan")]  # this step's batch loss, for the log line only

    def loss_fn(m: GPT, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = _loss(m, *b, cfg.bf16)
        last[0] = float(loss)
        return loss

    def evaluate(step: int) -> tuple[float, float]:
        v = sum(val_losses(model, corpus, cfg, cfg.eval_batches)) / cfg.eval_batches
        now = time.perf_counter()
        dt, clock[0] = now - clock[0], now
        if ctx is not None:
            ctx.log(step=step, train_loss=last[0], val_loss=v)
        return dt, v

    def out_of_time(evals: list[tuple[int, Any]]) -> bool:
        return budget_s is not None and sum(dt for _, (dt, _) in evals) > budget_s

    batches = (corpus.batch("train", cfg.batch, cfg.block, gen) for _ in itertools.count())
    res = fit(
        model,
        opt,
        loss_fn,
        batches,
        cfg.steps,
        ctx=ctx,
        desc="steps",
        schedule=schedule,
        evaluate=evaluate,
        eval_every=cfg.eval_every,
        eval_last=True,
        stop=out_of_time,
    )
    seconds = itertools.accumulate(dt for _, (dt, _) in res.evals)
    curve = [(step, t, v) for (step, (_, v)), t in zip(res.evals, seconds, strict=True)]
    return model, curve
