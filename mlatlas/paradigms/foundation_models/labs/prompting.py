"""Lab: the same trained model, different prompts: how much does the prompt alone change?"""

from __future__ import annotations

import numpy as np

from mlatlas.architectures.transformers.models import GPTConfig
from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.core.ensemble import member_batches
from mlatlas.core.power import replicate_note
from mlatlas.paradigms.foundation_models.tasks import (
    DIGITS,
    EPISODE_VOCAB,
    LENGTH,
    TASKS,
    episodes,
    prompt_test_sets,
)
from mlatlas.paradigms.foundation_models.train import gpt_ensemble, member_scores, train_lm


@lab("foundation_models", insights=["prompt engineering"])
def prompting(ctx: Lab) -> None:
    """Prompt engineering on a model small enough to train here.

    A GPT is trained on episodes of four digit-string tasks (copy, reverse, sort, add one to
    each digit): each episode shows 0-3 demonstrations ``x > f(x) ;`` and, half the time, a
    token naming the task, then a query. The task is not otherwise given, so with a bare query
    the model can only guess it. After training, the same model and the same held-out queries
    are scored (exact match of the 4-digit answer) under six prompts: the bare query, the task
    token, 1 or 3 demonstrations, 3 demonstrations whose delimiter ``;`` is replaced by a token
    never seen in training, and task token plus demonstrations. Brown et al. (2020) report
    that GPT-3's accuracy depends on the number of demonstrations and on the prompt's format;
    the claims, fixed before the runs, are the small-scale versions: demonstrations and the
    instruction each raise accuracy over the bare query, and an unfamiliar delimiter lowers
    the 3-demonstration accuracy. The model is trained with every format it is tested on
    except the unseen delimiter, so this measures what a prompt can unlock in a model, not
    learning new formats from the prompt. The test queries are held out of training: a
    training episode never contains a test query's (task, digits) pair, as its query or as a
    demonstration (`tasks.episodes` redraws such slots; without this, 79% of the test queries
    would occur in a seed's training stream at the default scale and all at the full one).

    At the default scale (800 steps, 5 seeds, run seed 0, test queries held out) the model has
    learned to follow the task token (exact match 0.89 against 0.16 for the bare query) but has
    barely learned to infer the task from demonstrations (0.24 with three, 0.20 with one): the
    demonstration claim is inconclusive (+0.08, interval [-0.04, 0.21]; the pilot asked for 15
    replicates), and so is the delimiter claim, since a model that hardly reads its
    demonstrations is not disturbed by their format (0.242 against 0.239). Inferring a task from
    examples is the ability that needs more training; the in-context lab of this topic measures
    it directly.
    """
    cfg = ctx.config(
        n_layer=2,
        n_head=4,
        n_embd=per_scale(32, 64, 128),
        batch=per_scale(16, 32, 64),
        steps=per_scale(30, 800, 4000),
        lr=3e-3,
        n_test=per_scale(200, 1000, 4000),
        seeds=per_scale(2, 5, 10),
    )
    ctx.dataset(record("digit-string tasks", tasks=list(TASKS), digits=DIGITS))
    demos = ctx.claim(
        "Three demonstrations raise exact-match accuracy over the bare query",
        quantity="held-out exact match; a = 3 demonstrations, b = bare query",
        direction=">",
        margin=0.0,
        paired=True,
    )
    instr = ctx.claim(
        "A task instruction token raises exact-match accuracy over the bare query",
        quantity="held-out exact match; a = instruction, b = bare query",
        direction=">",
        margin=0.0,
        paired=True,
    )
    delim = ctx.claim(
        "Replacing the demonstrations' delimiter by a token unseen in training lowers accuracy",
        quantity="held-out exact match; a = 3 demos with the unseen delimiter, b = 3 demos",
        direction="<",
        margin=0.0,
        paired=True,
    )
    test_sets, held_out = prompt_test_sets(cfg.n_test)
    ctx.metric("held_out_queries", len(held_out))
    ctx.metric("held_out_share", len(held_out) / (len(TASKS) * 10**DIGITS))
    reps = list(ctx.replicates(cfg.seeds))
    replicate_note(ctx, cfg.seeds, {"three demonstrations raise accuracy": 15})
    gcfg = GPTConfig(EPISODE_VOCAB, LENGTH - 1, cfg.n_layer, cfg.n_head, cfg.n_embd)
    ens = gpt_ensemble(gcfg, reps)
    gens = [rep.generator("batches") for rep in reps]
    res = train_lm(
        ens,
        member_batches(gens, lambda g: episodes(cfg.batch, g, held_out=held_out)[:3]),
        cfg.steps,
        cfg.lr,
        ctx=ctx,
    )
    acc: dict[str, np.ndarray] = {}
    per_task: dict[str, np.ndarray] = {}
    for name, (x, y, _, task) in test_sets.items():
        # the same queries, tasks and demonstrations for every prompt (one fixed stream)
        hit = member_scores(ens, x, y)[1][:, :, -DIGITS:].all(-1).double()  # (R, n)
        a = hit.mean(1).cpu().numpy()
        a[np.atleast_1d(res.diverged)] = np.nan
        acc[name] = a
        per_task[name] = np.array([hit[:, task == t].mean().item() for t in range(len(TASKS))])
    for rep in reps:
        i = rep.id
        demos.add(i, acc["3 demonstrations"][i], acc["bare query"][i])
        instr.add(i, acc["instruction"][i], acc["bare query"][i])
        delim.add(i, acc["3 demos, unseen delimiter"][i], acc["3 demonstrations"][i])
    ctx.table(
        "accuracy_by_prompt",
        [
            {"prompt": k, "exact_match": float(np.nanmean(v)), "per_seed": np.round(v, 3).tolist()}
            | {t: float(per_task[k][j]) for j, t in enumerate(TASKS)}
            for k, v in acc.items()
        ],
        note=f"{cfg.n_test} held-out queries, the same for every prompt; {cfg.steps} training "
        f"steps of {cfg.batch} episodes; chance for a model that guesses the task is about 0.25",
    )
    fig, ax = new_figure(1, 1, size=(7.5, 3.8))
    names = list(acc)
    for j, k in enumerate(names):
        ax[0, 0].bar(j, np.nanmean(acc[k]), color=f"C{j}")
        ax[0, 0].plot([j] * len(acc[k]), acc[k], "k.", alpha=0.6)
    ax[0, 0].set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax[0, 0].set(ylabel="held-out exact match", ylim=(0, 1.02), title="same model, six prompts")
    ctx.figure(
        "accuracy_by_prompt",
        fig,
        "Exact-match accuracy of the same trained models under six prompts (bars: mean; dots: "
        "seeds).",
    )
