"""Lab: zero-shot classification by a caption-trained dual encoder, with and without prompt
ensembling."""

from __future__ import annotations

import numpy as np

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.paradigms.multimodal.captions import (
    CLASS_WORDS,
    COLOUR_NAMES,
    HELD_OUT_TEMPLATES,
    POSITIONS,
    TRAIN_TEMPLATES,
    fill,
)
from mlatlas.paradigms.multimodal.retrieval import ensemble_prompts, zero_shot_predict
from mlatlas.paradigms.multimodal.shared import shared_clips
from mlatlas.paradigms.multimodal.train import caption_data, clip_embeddings, eval_captions

SINGLE = "a picture of a {cls}"


@lab("multimodal", insights=["Cross-modal alignment"])
def zero_shot(ctx: Lab) -> None:
    """Zero-shot classification: class names written as captions become the classifier.

    A CLIP-style dual encoder (LeNet-5 images, a 1-layer transformer over words, learned
    temperature) is trained only to match coloured, placed glyphs with their captions; no
    class label is ever a training target. Each test image is then labelled with the class
    whose caption embedding is nearest (Radford et al. 2021). The test images are held out
    and drawn with (class, colour) pairs seen in training; chance is 10%.

    Two classifiers from the same trained model, paired by seed: one prompt per class
    ("a picture of a {cls}", a training template), and the prompt ensemble of CLIP: the
    normalised mean of the embeddings of every template that names the class, training and
    held-out, filled with every colour and position. CLIP reports that ensembling 80 prompts
    adds 3.5 points of ImageNet accuracy over the single default prompt (Radford et al.
    2021, section 3.1.4); the second claim states that effect. Here the extra prompts also
    name a colour and a position, which the single prompt leaves out, so they average over
    image contexts the way CLIP's "a photo of a big {}" / "a blurry photo of a {}" do. A
    pilot run at the default scale (one seed) found the ensemble a few points *worse* than
    the single prompt; the claim is kept as the paper states it, and the verdict reports
    what this scale shows.

    At the default scale (five seeds, 700 steps, run seed 0) the single prompt reached 0.55 to
    0.89 (mean 0.67: above 50% is inconclusive, two seeds are still learning the classes) and
    the ensemble was lower in every seed, by 4.0 points on average (interval [-7.7, -0.3]
    points; inconclusive, as the refutation's Holm-corrected p, 0.039, misses 0.025). Prompts that
    name a colour and a position bring their own bias: averaging them over all colours
    includes the held-out (class, colour) captions, which the compositional lab shows land
    in the wrong place.

    The trained CLIPs are the ones the retrieval and compositional labs probe: one ensemble
    per (settings, data, replicate seeds), trained by whichever of the three labs runs first
    in a run tree and loaded by the others (`multimodal.shared`); a seed gives the same
    numbers whether its model was trained or loaded, and the record's note says which.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        n_train=per_scale(600, 10000, None),
        n_test=per_scale(200, 2000, 10000),
        seeds=per_scale(2, 5, 10),
        steps=per_scale(20, 700, 6000),
        batch=per_scale(32, 128, 256),
        lr=4e-3,
        dim=32,
        text_layers=per_scale(1, 1, 2),
        image="lenet",
    )
    above = ctx.claim(
        "Zero-shot accuracy from one caption per class is above 50% (chance 10%)",
        quantity="per seed: accuracy on held-out test images, classifier = 'a picture of a {cls}'",
        direction=">",
        margin=0.5,
    )
    ensembling = ctx.claim(
        "Prompt ensembling raises zero-shot accuracy over the single prompt",
        quantity="per seed: accuracy; a = ensemble of all prompts naming the class, b = single",
        direction=">",
        margin=0.0,
        paired=True,
    )
    vocab, train, rec = caption_data(cfg.dataset, cfg.n_train)
    ctx.dataset(rec)
    words = CLASS_WORDS[cfg.dataset]
    test = eval_captions(cfg.dataset, vocab, cfg.n_test, "seen", HELD_OUT_TEMPLATES)
    reps = list(ctx.replicates(cfg.seeds))
    # the same CLIPs as the other two caption labs: trained once per run tree, then loaded
    ens, res = shared_clips(ctx, cfg, reps, vocab, train)
    single = vocab.encode([fill(SINGLE, w, "red", "top left") for w in words])
    naming = [t for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES if "{cls}" in t]
    prompts = [
        fill(t, w, c, p) for w in words for t in naming for c in COLOUR_NAMES for p in POSITIONS
    ]
    n_per_class = len(prompts) // len(words)
    many = vocab.encode(prompts)
    rows, confusion = [], np.zeros((len(words), len(words)))
    for r, rep in enumerate(reps):
        model = ens.member(r)
        img, one = clip_embeddings(model, test.images, single)
        _, all_ = clip_embeddings(model, test.images[:1], many)
        classes = ensemble_prompts(all_.reshape(len(words), n_per_class, -1))
        pred_one, pred_ens = zero_shot_predict(img, one), zero_shot_predict(img, classes)
        acc_one = float((pred_one == test.cls).double().mean())
        acc_ens = float((pred_ens == test.cls).double().mean())
        if res.diverged[r]:
            acc_one = acc_ens = float("nan")
        above.add(rep.id, acc_one)
        ensembling.add(rep.id, acc_ens, acc_one)
        np.add.at(confusion, (test.cls.cpu().numpy(), pred_one.cpu().numpy()), 1)
        scale = float(model.scale().detach())
        rows.append(
            {"seed": rep.id, "single_prompt": acc_one, "prompt_ensemble": acc_ens, "scale": scale}
        )
        ctx.log(step=cfg.steps, seed=rep.id, single=acc_one, ensemble=acc_ens)
    ctx.table(
        "zero_shot_accuracy",
        rows,
        note=f"{len(test)} held-out test images; {n_per_class} prompts per class in the "
        "ensemble; scale = exp(s), the learned inverse temperature",
    )
    fig, ax = new_figure(1, 2, size=(10, 4))
    acc = np.array([[row["single_prompt"], row["prompt_ensemble"]] for row in rows])
    for a in acc:
        ax[0, 0].plot([0, 1], a, "o-", color="0.5")
    ax[0, 0].axhline(0.1, ls="--", color="k", label="chance")
    ax[0, 0].set_xticks([0, 1], ["single prompt", f"ensemble of {n_per_class}"])
    ax[0, 0].set(ylabel="zero-shot test accuracy", title="one line per seed")
    ax[0, 0].legend()
    confusion /= confusion.sum(1, keepdims=True)
    ax[0, 1].imshow(confusion, cmap="viridis", vmin=0, vmax=1)
    ax[0, 1].set(xlabel="predicted", ylabel="true", title="single prompt, all seeds")
    ax[0, 1].set_xticks(range(len(words)), words, rotation=90)
    ax[0, 1].set_yticks(range(len(words)), words)
    ax[0, 1].grid(False)
    ctx.figure("zero_shot", fig, "Zero-shot accuracy per seed, and the confusion matrix.")
    ctx.metric("train_loss_final", res.final_loss)
