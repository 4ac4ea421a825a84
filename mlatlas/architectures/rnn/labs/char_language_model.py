"""A character-level LSTM language model against unigram and bigram baselines."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.rnn.cells import Recurrent
from mlatlas.architectures.rnn.train import ClipAdam
from mlatlas.core import Lab, fit, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import char_corpus


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, ours: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = (
            Recurrent("lstm", embed, hidden, layers)
            if ours
            else nn.LSTM(embed, hidden, layers, batch_first=True)
        )
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor, state=None):
        h, state = self.rnn(self.embed(idx), state)
        return self.head(h), state


@torch.no_grad()
def sample(
    model: CharLSTM, corpus, prompt: str, n: int, gen: torch.Generator, temperature: float = 0.8
) -> str:
    idx = corpus.encode(prompt)[None]
    logits, state = model(idx)
    out = []
    for _ in range(n):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen)
        out.append(int(nxt))
        logits, state = model(nxt[None], state)
    return prompt + corpus.decode(out)


@lab("rnn", insights=["Temporal dependencies"])
def char_language_model(ctx: Lab) -> None:
    """An LSTM character language model on Tiny Shakespeare: validation loss in nats per
    character, against a unigram and a bigram model of the same text, and samples.

    One LSTM is trained (one seed: a longer run is all a 2-core CPU affords here) with Adam,
    a cosine learning-rate decay and gradient-norm clipping. The claim's samples are *items*:
    `eval_batches` validation windows of `batch` x `seq` characters, fixed whatever --seed,
    each scored by the LSTM and by the bigram model (paired by window; the test is on the
    LSTM-minus-bigram loss). Its interval covers the variation over validation text, not over
    training seeds. The baselines are counted on the training split.
    """
    cfg = ctx.config(
        corpus=per_scale("guide", "tinyshakespeare", "tinyshakespeare"),
        embed=64,
        hidden=per_scale(128, 256, 512),
        layers=per_scale(1, 1, 2),
        seq=per_scale(32, 64, 128),
        batch=32,
        steps=per_scale(60, 2000, 10000),
        lr=3e-3,
        clip=1.0,
        eval_batches=per_scale(5, 20, 50),
        ours=False,
    )
    corpus = char_corpus(cfg.corpus)
    ctx.dataset(corpus.record)
    v = len(corpus.vocab)
    below = ctx.claim(
        "The LSTM's validation loss is below the bigram model's: it uses more than one "
        "character of context",
        quantity="nats per character on one validation window; a = LSTM, b = bigram, paired by "
        "window (items, not seeds)",
        direction="<",
        margin=0.0,
        paired=True,
        unit="item",
    )
    # baselines from counts on the training split (add-one smoothing)
    uni = torch.bincount(corpus.train, minlength=v).double() + 1
    uni_logp = torch.log(uni / uni.sum())
    big = torch.ones(v, v, dtype=torch.float64)
    big.index_put_(
        (corpus.train[:-1], corpus.train[1:]),
        torch.ones(len(corpus.train) - 1, dtype=torch.float64),
        accumulate=True,
    )
    big_logp = torch.log(big / big.sum(1, keepdim=True))
    uni_nats = float(-uni_logp[corpus.val].mean())
    bi_nats = float(-big_logp[corpus.val[:-1], corpus.val[1:]].mean())
    g = fixed_generator("char-lm-val")
    val = [corpus.batch("val", cfg.batch, cfg.seq, g) for _ in range(cfg.eval_batches)]

    (rep,) = ctx.replicates(1, desc="run")
    rep.seed_torch("init")
    model = CharLSTM(v, cfg.embed, cfg.hidden, cfg.layers, cfg.ours)
    opt = ClipAdam(model.parameters(), lr=cfg.lr, max_norm=cfg.clip)
    gen = rep.generator("batches")

    def batches():
        while True:
            yield corpus.batch("train", cfg.batch, cfg.seq, gen)

    last = [math.nan]  # this step's batch loss, for the log line only (results are in res)

    def loss_fn(m, batch):
        x, y = batch
        loss = F.cross_entropy(m(x)[0].reshape(-1, v), y.reshape(-1))
        last[0] = float(loss.detach())
        return loss

    @torch.no_grad()
    def val_losses() -> list[float]:
        return [F.cross_entropy(model(x)[0].reshape(-1, v), y.reshape(-1)).item() for x, y in val]

    def schedule(t: int) -> float:  # cosine from lr to lr / 10
        return cfg.lr / 10 + (cfg.lr - cfg.lr / 10) * (1 + math.cos(math.pi * t / cfg.steps)) / 2

    def evaluate(step: int) -> float:
        val_loss = float(np.mean(val_losses()))
        ctx.log(step=step, train_loss=last[0], val_loss=val_loss)
        return val_loss

    res = fit(
        model,
        opt,
        loss_fn,
        batches(),
        cfg.steps,
        ctx=ctx,
        schedule=schedule,
        evaluate=evaluate,
        eval_every=max(1, cfg.steps // 10),
    )
    curve = [(step, float(res.losses[step - 1]), va) for step, va in res.evals]
    lstm = val_losses()
    bigram = [float(-big_logp[x, y].mean()) for x, y in val]
    for i, (a, b) in enumerate(zip(lstm, bigram, strict=True)):
        below.add(i, a, b)
    final = float(np.mean(lstm))
    ctx.metric("val_nats_per_char", final)
    ctx.metric("val_bits_per_char", final / math.log(2))
    ctx.table(
        "models",
        [
            {"model": "unigram", "val_nats_per_char": uni_nats},
            {"model": "bigram", "val_nats_per_char": bi_nats},
            {
                "model": "bigram, on the claim's windows",
                "val_nats_per_char": float(np.mean(bigram)),
            },
            {
                "model": f"LSTM {cfg.layers}x{cfg.hidden}, on the claim's windows",
                "val_nats_per_char": final,
            },
        ],
        note=f"{cfg.steps} steps of {cfg.batch} x {cfg.seq} characters; the first two rows score "
        f"the whole validation split, the last two the {cfg.eval_batches} fixed windows",
    )
    prompt = corpus.decode(corpus.val[:20])
    text = sample(model, corpus, prompt, 300, rep.generator("sample"))
    ctx.table("sample", [{"temperature": 0.8, "text": text}])
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    if curve:
        steps, tr, va = zip(*curve, strict=True)
        ax[0, 0].plot(steps, tr, "o-", label="train (batch)")
        ax[0, 0].plot(steps, va, "s-", label="validation")
    ax[0, 0].axhline(bi_nats, color="gray", ls="--", label="bigram")
    ax[0, 0].axhline(uni_nats, color="gray", ls=":", label="unigram")
    ax[0, 0].set(xlabel="step", ylabel="nats / char", title="character LSTM")
    ax[0, 0].legend()
    ctx.figure("char_lm", fig, "Training and validation loss of the character LSTM.")
    ctx.note(f"Sample: {text[:200]!r}")
    ctx.note(f"LSTM computed with {'our cells' if cfg.ours else 'the torch kernel (nn.LSTM)'}.")
