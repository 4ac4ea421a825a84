"""Lab: early against late fusion on yes/no questions about the generated images."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.power import replicate_note
from mlatlas.core.seeding import fixed_rng
from mlatlas.core.train import count_params
from mlatlas.foundations.losses.functions import cross_entropy
from mlatlas.paradigms.multimodal.captions import CLASS_WORDS, dataset_record, load_glyphs
from mlatlas.paradigms.multimodal.fusion import EarlyFusion, LateFusion
from mlatlas.paradigms.multimodal.train import train_ensemble
from mlatlas.paradigms.multimodal.vqa import QUESTION_TYPES, QuestionVocab, make_questions

ARMS = {"early": EarlyFusion, "late": LateFusion}


@torch.no_grad()
def _correct(model: torch.nn.Module, images, tokens, answer, chunk: int = 1000) -> np.ndarray:
    """1.0 where the model answers a question right, else 0.0."""
    model.eval()
    out = [
        model(images[i : i + chunk], tokens[i : i + chunk]) for i in range(0, len(answer), chunk)
    ]
    return (torch.cat(out).argmax(-1) == answer).double().cpu().numpy()


@lab("multimodal", insights=["multi-modal fusion"])
def fusion(ctx: Lab) -> None:
    """Early and late fusion answering "is it red?", "is it in the top left?", "is it a seven?".

    The generator balances every question: P(yes | question) = 1/2 exactly, and the image
    alone says nothing about which attribute is asked, so 50% is the ceiling of either
    modality on its own; anything above it is fusion at work. Late fusion encodes the image
    (LeNet-5) and the question (a 2-layer transformer) separately and joins the two vectors
    in an MLP (the two-stream VQA baselines, Antol et al. 2015); early fusion feeds 7x7x3
    patches and words as one sequence to a 2-layer transformer with modality embeddings
    (single-stream, as ViLT, Kim et al. 2021). Per seed, both see the same minibatches;
    the held-out test questions are fixed.

    The comparison states the single-stream papers' argument, that cross-modal attention at
    every layer beats a late join; here it is measured at equal steps, not equal compute or
    parameters (the table lists both parameter counts).

    At the default scale (8 seeds, 500 steps, run seed 0) early fusion answered 0.84 of the
    test questions and late fusion 0.72 (both claims supported): early fusion had colour and
    position questions nearly solved in every seed, while late fusion still missed many colour
    or position questions in several seeds. Class questions, which need the digit recognised at
    14x14, stay near chance (0.47 to 0.61) for both at this budget.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(600, 10000, None),
        n_test=per_scale(300, 2000, 10000),
        seeds=per_scale(2, 8, 10),
        steps=per_scale(20, 500, 5000),
        batch=per_scale(32, 128, 256),
        lr=2e-3,
        d=64,
        layers=2,
    )
    beats_chance = ctx.claim(
        "Both fusion models answer better than either modality alone can (50% by construction)",
        quantity="per seed: test accuracy; one part per fusion model",
        direction=">",
        margin=0.5,
    )
    early_wins = ctx.claim(
        "Early fusion answers more test questions correctly than late fusion after the same "
        "number of steps",
        quantity="per seed: test accuracy; a = early fusion, b = late fusion",
        direction=">",
        margin=0.0,
        paired=True,
    )
    words = CLASS_WORDS[cfg.dataset]
    vocab = QuestionVocab(words)
    glyphs, labels = load_glyphs(cfg.dataset, "train", cfg.n_train)
    train = make_questions(glyphs, labels, words, vocab, fixed_rng("vqa train", cfg.dataset))
    glyphs, labels = load_glyphs(cfg.dataset, "test", cfg.n_test)
    test = make_questions(glyphs, labels, words, vocab, fixed_rng("vqa test", cfg.dataset))
    ctx.dataset({**dataset_record(cfg.dataset), "n_train": len(train), "n_test": len(test)})
    reps = list(ctx.replicates(cfg.seeds))
    replicate_note(ctx, cfg.seeds, {"early against late fusion": 12, "the other claims": 6})

    def loss(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return cross_entropy(z, train.answer[idx])

    acc: dict[str, list[float]] = {}
    rows, curves = [], {}
    for arm, build in ARMS.items():
        models = []
        for rep in reps:
            rep.seed_torch("init", arm)
            models.append(build(len(vocab), vocab.max_len, cfg.d, cfg.layers))
        ens, res = train_ensemble(
            models, reps, train.images, train.tokens, loss, cfg.steps, cfg.batch, cfg.lr, ctx, arm
        )
        curves[arm] = res.losses
        acc[arm] = []
        for r, rep in enumerate(reps):
            right = _correct(ens.member(r), test.images, test.tokens, test.answer)
            a = float("nan") if res.diverged[r] else float(right.mean())
            acc[arm].append(a)
            by_kind = {
                f"acc_{k}": float(right[test.kind.cpu().numpy() == i].mean())
                for i, k in enumerate(QUESTION_TYPES)
            }
            rows.append(
                {"model": arm, "seed": rep.id, "params": count_params(models[0]), "acc": a}
                | by_kind
            )
            beats_chance.add(rep.id, a, part=arm)
    for i, rep in enumerate(reps):
        early_wins.add(rep.id, acc["early"][i], acc["late"][i])
    ctx.log(step=cfg.steps, **{f"acc_{arm}": float(np.nanmean(v)) for arm, v in acc.items()})
    ctx.table(
        "fusion",
        rows,
        note=f"{len(test)} held-out questions, a third of each type; {cfg.steps} Adam steps, "
        f"batch {cfg.batch}, the same batches for both models of a seed",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.8))
    for arm, losses in curves.items():
        steps = np.arange(1, len(losses) + 1)
        ax[0, 0].plot(steps, np.nanmean(losses, axis=1), label=f"{arm} fusion")
    ax[0, 0].axhline(np.log(2), ls="--", color="k", label="chance (log 2)")
    ax[0, 0].set(xlabel="step", ylabel="training loss (mean over seeds)")
    ax[0, 0].legend()
    for j, arm in enumerate(ARMS):
        means = [
            np.nanmean([row[f"acc_{k}"] for row in rows if row["model"] == arm])
            for k in QUESTION_TYPES
        ]
        ax[0, 1].bar(np.arange(3) + 0.38 * j, means, 0.36, label=f"{arm} fusion")
    ax[0, 1].axhline(0.5, ls="--", color="k")
    ax[0, 1].set_xticks(np.arange(3) + 0.19, QUESTION_TYPES)
    ax[0, 1].set(ylim=(0.4, 1.02), ylabel="test accuracy (mean over seeds)")
    ax[0, 1].legend()
    ctx.figure("fusion", fig, "Training loss, and test accuracy by question type.")
