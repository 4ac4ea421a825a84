"""Lab: pre-train a small GPT on WikiText-2, fine-tune it on a small slice of Shakespeare."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.architectures.transformers.models import GPTConfig
from mlatlas.core import Ensemble, Lab, fixed_generator, lab, new_figure, per_scale
from mlatlas.core.data import REGISTRY, guide_text, load_tinyshakespeare, load_wikitext2
from mlatlas.core.ensemble import member_batches
from mlatlas.paradigms.foundation_models.bpe import BPETokenizer, train_bpe
from mlatlas.paradigms.foundation_models.train import gpt_ensemble, member_scores, train_lm


def corpus_text(name: str) -> tuple[str, dict]:
    """'wikitext-2' (its validation split, lines rejoined), 'tinyshakespeare' or 'guide'."""
    if name == "wikitext-2":
        text = " ".join(load_wikitext2("valid")).replace(" <eos> ", "\n")
        return text, REGISTRY["wikitext-2"].record() | {"split": "valid"}
    if name == "tinyshakespeare":
        return load_tinyshakespeare(), REGISTRY["tinyshakespeare"].record()
    return guide_text(), {"name": "guide-text", "source": "mlatlas.guide descriptions"}


def windows(ids: torch.Tensor, n: int, block: int, gen: torch.Generator):
    """n random windows of block + 1 tokens: inputs and next-token targets."""
    start = torch.randint(0, len(ids) - block - 1, (n,), generator=gen)
    chunk = ids[start[:, None] + torch.arange(block + 1)]
    return chunk[:, :-1], chunk[:, 1:]


def encode(tok: BPETokenizer, text: str) -> torch.Tensor:
    return torch.tensor(tok.encode(text), dtype=torch.long)


@lab("foundation_models", insights=["Scale effects"])
def pretrain_finetune(ctx: Lab) -> None:
    """Pre-training on broad text, then fine-tuning, against training on the small task alone.

    The recipe of GPT (Radford et al. 2018) and of every foundation model since: pre-train on a
    large generic corpus with next-token prediction, then fine-tune on the task. A byte-level
    BPE (512 tokens) is learned on the pre-training corpus, WikiText-2 (its 217k-word
    validation split; Merity et al. 2017), and shared by every arm. The downstream task is
    language modelling of Shakespeare with only a small slice of Tiny Shakespeare to train on.
    Three arms per seed, with the same architecture, fine-tuning recipe and batches: from
    scratch, from a short pre-training run of a quarter of the steps, and from the full
    pre-training run. The two pre-training runs start from the same weights and read the
    same batch stream (the short one its first quarter), and each runs its own complete
    schedule (warmup, then cosine decay to the end of its own steps), so both arms fine-tune
    from an annealed model and differ only in the pre-training steps and tokens. Each arm's
    stopping step is chosen per member on a validation part of the slice (early stopping:
    the slice is small enough to overfit); the score is the loss on fixed windows of the last
    10% of Tiny Shakespeare, which no arm trains on. The learning rates are fixed beforehand,
    not searched: 3e-3 from scratch, 1e-3 to fine-tune (the usual lower rate that keeps a
    pre-trained model near its starting point).

    The claims, fixed before the runs: the fully pre-trained model ends lower than the one
    trained from scratch, and the one pre-trained four times longer ends lower than the
    quarter-length run (more pre-training compute, better transfer). At the default scale
    the scratch arm is still improving at its last fine-tuning step, so the comparison holds
    at an equal downstream budget (200 steps), not at convergence.
    """
    cfg = ctx.config(
        pretrain_corpus=per_scale("guide", "wikitext-2", "wikitext-2"),
        downstream=per_scale("guide", "tinyshakespeare", "tinyshakespeare"),
        vocab=512,
        slice_chars=per_scale(4000, 20000, 50000),
        block=per_scale(32, 64, 128),
        n_layer=2,
        n_head=4,
        n_embd=per_scale(32, 64, 128),
        batch=16,
        pretrain_steps=per_scale(20, 600, 5000),
        finetune_steps=per_scale(20, 200, 1000),
        lr=3e-3,
        finetune_lr=1e-3,
        evals=10,
        eval_windows=per_scale(16, 64, 256),
        seeds=per_scale(2, 5, 10),
    )
    pre_text, pre_rec = corpus_text(cfg.pretrain_corpus)
    down_text, down_rec = corpus_text(cfg.downstream)
    ctx.dataset(pre_rec)
    ctx.dataset(down_rec)
    beats_scratch = ctx.claim(
        "Fine-tuning a GPT pre-trained on WikiText-2 reaches a lower held-out Shakespeare loss "
        "than training the same GPT on the small slice from scratch",
        quantity="held-out nats/token at the validation-chosen step; a = pre-trained then "
        "fine-tuned, b = from scratch",
        direction="<",
        margin=0.0,
        paired=True,
    )
    more_is_better = ctx.claim(
        "Four times more pre-training steps give a lower held-out Shakespeare loss after the "
        "same fine-tuning",
        quantity="held-out nats/token at the validation-chosen step; a = full pre-training, "
        "b = a separate run of a quarter of its steps with its own complete schedule",
        direction="<",
        margin=0.0,
        paired=True,
    )
    tok = train_bpe(pre_text, cfg.vocab)
    pre_ids = encode(tok, pre_text)
    cut = int(0.9 * len(down_text))
    piece = encode(tok, down_text[: cfg.slice_chars])
    split = int(0.9 * len(piece))
    ft_train, ft_val, test = piece[:split], piece[split:], encode(tok, down_text[cut:])
    val_x, val_y = windows(ft_val, cfg.eval_windows, cfg.block, fixed_generator("ft-val"))
    te_x, te_y = windows(test, cfg.eval_windows, cfg.block, fixed_generator("shakespeare-test"))
    ctx.metric("pretrain_tokens", len(pre_ids))
    ctx.metric("finetune_tokens", len(ft_train))
    ctx.metric("test_bytes_per_token", len(down_text[cut:].encode()) / len(test))

    gcfg = GPTConfig(tok.vocab_size, cfg.block, cfg.n_layer, cfg.n_head, cfg.n_embd)
    reps = list(ctx.replicates(cfg.seeds))
    quarter = cfg.pretrain_steps // 4
    pretrained = {}
    for name, steps in (("pretrained 1/4", quarter), ("pretrained", cfg.pretrain_steps)):
        # the same initial weights and the same batch stream (its first `steps` batches) for
        # both runs; each has its own complete warmup-cosine schedule over its own steps
        model = gpt_ensemble(gcfg, reps)
        pre_gens = [rep.generator("pretrain") for rep in reps]
        train_lm(
            model,
            member_batches(pre_gens, lambda g: windows(pre_ids, cfg.batch, cfg.block, g)),
            steps,
            cfg.lr,
            ctx=ctx,
            desc=f"pretrain {steps} steps",
        )
        pretrained[name] = model
    arms: dict[str, Ensemble] = {
        "scratch": gpt_ensemble(gcfg, reps),
        **pretrained,
    }
    scores: dict[str, np.ndarray] = {}
    curves = {}
    for name, model in arms.items():

        def evaluate(step: int, model: Ensemble = model) -> tuple[np.ndarray, np.ndarray]:
            val = -member_scores(model, val_x, val_y)[0].double().mean((1, 2))
            te = -member_scores(model, te_x, te_y)[0].double().mean((1, 2))
            return val.cpu().numpy(), te.cpu().numpy()

        gens = [rep.generator("finetune") for rep in reps]  # the same batches for every arm
        fr = train_lm(
            model,
            member_batches(gens, lambda g: windows(ft_train, cfg.batch, cfg.block, g)),
            cfg.finetune_steps,
            cfg.finetune_lr if name != "scratch" else cfg.lr,
            ctx=ctx,
            desc=name,
            evaluate=evaluate,
            eval_every=max(1, cfg.finetune_steps // cfg.evals),
        )
        val = np.stack([v for _, (v, _) in fr.evals])  # (evals, R)
        te = np.stack([t for _, (_, t) in fr.evals])
        best = np.nanargmin(np.where(np.isfinite(val), val, np.inf), axis=0)
        s = te[best, np.arange(len(reps))]
        s[np.atleast_1d(fr.diverged)] = np.nan
        scores[name] = s
        curves[name] = ([st for st, _ in fr.evals], te.mean(1))
    for rep in reps:
        i = rep.id
        beats_scratch.add(i, scores["pretrained"][i], scores["scratch"][i])
        more_is_better.add(i, scores["pretrained"][i], scores["pretrained 1/4"][i])
    ctx.table(
        "downstream",
        [
            {
                "arm": k,
                "test_nats_per_token": float(np.nanmean(v)),
                "per_seed": np.round(v, 4).tolist(),
            }
            for k, v in scores.items()
        ],
        note=f"{len(pre_ids)} pre-training tokens, {cfg.pretrain_steps} steps (the short run "
        f"{quarter}); fine-tuning on "
        f"{len(ft_train)} tokens for up to {cfg.finetune_steps} steps; BPE vocabulary "
        f"{tok.vocab_size}",
    )
    fig, ax = new_figure(1, 1, size=(6, 3.8))
    for k, (steps, curve) in enumerate(curves.values()):
        ax[0, 0].plot(steps, curve, "o-", color=f"C{k}", label=list(curves)[k])
    ax[0, 0].set(xlabel="fine-tuning step", ylabel="held-out nats/token (mean over seeds)")
    ax[0, 0].legend()
    ctx.figure(
        "finetune_curves",
        fig,
        "Held-out Shakespeare loss during fine-tuning, from scratch and from two WikiText-2 "
        "pre-training runs (a quarter of the steps, and all of them).",
    )
