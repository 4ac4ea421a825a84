"""Lab: a character-level GPT trained on Tiny Shakespeare in a few minutes of CPU."""

from __future__ import annotations

import math

import numpy as np

from mlatlas.architectures.transformers.train import (
    CHAR_GPT_SETTINGS,
    train_char_gpt,
    tuning_split,
    val_losses,
)
from mlatlas.core import Lab, lab, new_figure
from mlatlas.core.data import char_corpus
from mlatlas.core.train import count_params

NANOGPT_CPU = 1.88  # nats/char: nanoGPT's README, CPU recipe (4 layers, 4 heads, 128 dims)


@lab("transformers", insights=["parallelizable sequence modeling", "Query-key-value attention"])
def char_gpt(ctx: Lab) -> None:
    """A character-level GPT on Tiny Shakespeare in about half a minute of 2-core CPU.

    nanoGPT's README gives a CPU recipe (4 layers, 4 heads, 128 dims, context 64, 2000
    iterations of 12 windows, AdamW at lr 1e-3) that reaches a validation loss of about 1.88
    nats per character in a few minutes. This lab trains the same shape (4 layers, 128 dims,
    context 64) for 300 steps of 32 windows with Muon (Jordan et al. 2024) on the blocks'
    matrices and AdamW on the embeddings, gains and biases, a linear warmup and a cosine decay;
    ``benchmarks/charlm.py`` times this recipe and says how it was chosen (on a split held out
    of the training text, `tune`). It trains with PyTorch's fused attention kernel for speed
    (`kernel` setting; the from-scratch attention is proven equal to that kernel in the tests)
    in float32: bf16 autocast (`bf16` setting) was about 50% slower per step at this width on
    this 2-core CPU. (Earlier versions trained 1200 AdamW steps of 32 x 128 characters, about
    three minutes, to 1.67.)

    One run only: there are no seed replicates. The claim's samples are the losses of fixed
    validation batches after training (unit "item"): its interval covers which validation
    text is scored, not the spread between training seeds.
    """
    cfg = ctx.config(**CHAR_GPT_SETTINGS)
    corpus = char_corpus(cfg.corpus)
    if cfg.tune:  # score on the held-out end of the training text, never on the validation text
        corpus = tuning_split(corpus)
    ctx.dataset(corpus.record)
    claim = ctx.claim(
        f"The character GPT ends below nanoGPT's CPU-recipe validation loss of {NANOGPT_CPU} "
        "nats/char",
        quantity=f"cross-entropy (nats/char) of each of {cfg.final_batches} fixed validation "
        f"batches of {cfg.batch} x {cfg.block} characters, after training (one run)",
        direction="<",
        margin=NANOGPT_CPU,
        unit="item",
        insight="parallelizable sequence modeling",
    )
    (rep,) = ctx.replicates(1, desc="run")
    rep.seed_torch("init")
    model, curve = train_char_gpt(cfg, corpus, rep.generator("batches"), ctx=ctx)
    final = val_losses(model, corpus, cfg, cfg.final_batches)
    claim.add_all(final)
    first_below = next((t for _, t, v in curve if v <= NANOGPT_CPU), math.inf)
    ctx.metric("val_nats_per_char", float(np.mean(final)))
    ctx.metric("train_seconds", curve[-1][1])
    ctx.metric("params", count_params(model))
    ctx.metric(f"seconds_to_val_{NANOGPT_CPU}", first_below)
    ctx.table(
        "curve",
        [{"step": s, "val_loss": v} for s, _, v in curve],
        note=f"{count_params(model)} parameters; {cfg.batch} x {cfg.block} characters per step; "
        f"validation loss: mean over {cfg.eval_batches} fixed batches",
    )
    prompt = corpus.encode(corpus.decode(corpus.val[:32]))[None]
    text = corpus.decode(
        model.generate(prompt, 300, temperature=0.8, top_k=20, generator=rep.generator("sample"))[0]
    )
    ctx.table("sample", [{"temperature": 0.8, "top_k": 20, "text": text}])
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    ax[0, 0].plot([t for _, t, _ in curve], [v for *_, v in curve], "o-")
    ax[0, 0].axhline(
        NANOGPT_CPU, color="gray", ls="--", label=f"nanoGPT CPU recipe, ~{NANOGPT_CPU}"
    )
    ax[0, 0].set(xlabel="seconds", ylabel="validation nats / char", title="char-GPT")
    ax[0, 0].legend()
    ctx.figure("char_gpt", fig, "Validation loss of the character GPT against wall time.")
    ctx.note(
        f"{curve[-1][1]:.0f} s of training; first at or below {NANOGPT_CPU} at {first_below:.0f} s."
    )
    ctx.note(f"Sample: {text[:200]!r}")
    ctx.note(
        f"Optimizer: {cfg.optimizer}; attention kernel: {cfg.kernel}; bf16 autocast: {cfg.bf16}."
    )
