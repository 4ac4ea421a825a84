"""The adding problem: can a tanh RNN, an LSTM and a GRU carry a number across T steps?"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F

from mlatlas.architectures.rnn.train import (
    ADDING_BASELINE,
    ClipAdam,
    ElmanRegressor,
    SequenceRegressor,
    adding_batches,
    adding_set,
    flush_denormals,
    member_mse,
)
from mlatlas.core import Ensemble, Lab, fit, lab, new_figure, per_scale
from mlatlas.core.data import record

KINDS = ("rnn", "lstm", "gru")


@lab("rnn", insights=["Temporal dependencies", "gating mechanisms"])
def adding(ctx: Lab) -> None:
    """The adding problem: sum two marked numbers seen far apart in a long sequence.

    A model must hold the first marked value for up to T steps. Predicting the mean scores
    MSE 1/6 = 0.167; Hochreiter & Schmidhuber (1997) showed LSTM solving it at lengths where
    plain recurrent nets fail. Each cell is trained from `seeds` initialisations (one
    replicate = one init and one batch stream, the stream shared by the three cells) with Adam
    and gradient-norm clipping, for at most `max_steps` steps; training stops early once every
    seed of the cell scores a validation MSE below `stop_ratio` x 0.167 (a generated validation
    set, not the test set). The test MSE per seed, over the baseline, feeds the claims, tested
    on log10 (a geometric mean: solved and unsolved runs differ by orders of magnitude); a run
    that diverges counts as the baseline. The tanh RNN's seeds train as one batched
    `Ensemble` (this topic's unrolled Elman equations); LSTM and GRU seeds run one at a time.

    Changed from the single-run version: claims are now over seeds, and the learning rate is
    1e-2 instead of 1e-3. It was picked on a generated validation set among 1e-3, 3e-3, 5e-3
    and 1e-2 (one or two seeds each, 1000-1200 steps): at 1e-3 the LSTM and GRU were still on
    the 0.94 x baseline plateau within a budget this lab can afford five times per cell.
    """
    cfg = ctx.config(
        length=per_scale(10, 100, 100),
        hidden=per_scale(16, 64, 64),
        max_steps=per_scale(60, 2000, 4000),
        batch=64,
        lr=1e-2,
        clip=1.0,
        eval_every=per_scale(20, 100, 100),
        stop_ratio=0.02,
        n_val=per_scale(200, 500, 1000),
        n_test=per_scale(500, 2000, 4000),
        seeds=per_scale(2, 5, 10),
        ours=False,
    )
    t_len = cfg.length
    ctx.dataset(record("adding_problem", length=t_len, n_val=cfg.n_val, n_test=cfg.n_test))
    x_val, y_val = adding_set(cfg.n_val, t_len, "val")
    x_te, y_te = adding_set(cfg.n_test, t_len, "test")
    solves = {
        kind: ctx.claim(
            f"{kind.upper()} solves the adding problem at length {t_len}: test MSE below 10% of "
            "the 0.167 baseline",
            quantity="test MSE / 0.167 per seed (geometric mean over seeds); a diverged run "
            "counts as 1.0",
            direction="<",
            margin=0.1,
            log=True,
            on_failure=1.0,
            insight="gating mechanisms",
        )
        for kind in ("lstm", "gru")
    }
    fails = ctx.claim(
        f"The vanilla RNN does not: at length {t_len} its test MSE stays above half the baseline",
        quantity="test MSE / 0.167 per seed (geometric mean over seeds); a diverged run counts "
        "as 1.0",
        direction=">",
        margin=0.5,
        log=True,
        on_failure=1.0,
        insight="Temporal dependencies",
    )
    target = cfg.stop_ratio * ADDING_BASELINE
    reps = list(ctx.replicates(cfg.seeds, desc="inits"))
    rows, curves, ratios = [], {}, {}
    for kind in ctx.progress(KINDS, desc="cells"):
        if kind == "rnn":  # all seeds at once, each member with its own batch stream
            members = []
            for rep in reps:
                rep.seed_torch("init", kind)
                members.append(ElmanRegressor(2, cfg.hidden))
            groups = [(Ensemble(members), reps)]
        else:
            groups = []
            for rep in reps:
                rep.seed_torch("init", kind)
                groups.append((SequenceRegressor(kind, 2, cfg.hidden, cfg.ours), [rep]))
        curves[kind], ratios[kind] = [], []
        for net, group in groups:
            steps, curve, reached = _train(ctx, net, group, cfg, (x_val, y_val), target, kind)
            test = member_mse(net, x_te, y_te)
            for i, rep in enumerate(group):
                ratio = test[i] / ADDING_BASELINE
                ratios[kind].append(ratio)
                (fails if kind == "rnn" else solves[kind]).add(rep.id, ratio)
                rows.append(
                    {
                        "cell": kind,
                        "seed_id": rep.id,
                        "steps_to_val_target": reached[i],
                        "test_mse": test[i],
                        "vs_baseline": ratio,
                        "solved": bool(ratio < 0.1),
                    }
                )
                curves[kind].append((steps, curve[:, i]))
            ctx.log(step=None, cell=kind, median_vs_baseline=float(np.median(ratios[kind])))
    for kind in KINDS:
        r = np.asarray(ratios[kind])
        ctx.metric(f"{kind}_solved_runs", f"{int((r < 0.1).sum())} of {len(r)}")
        ctx.metric(f"{kind}_failed_runs", int((~np.isfinite(r)).sum()))
    ctx.table(
        "adding",
        rows,
        note=f"length {t_len}; at most {cfg.max_steps} Adam steps (lr {cfg.lr}, clip "
        f"{cfg.clip}) of {cfg.batch} sequences; steps_to_val_target: first evaluation (every "
        f"{cfg.eval_every} steps) with validation MSE < {cfg.stop_ratio} x 0.167, inf = never; "
        "solved: test MSE < 10% of baseline",
    )
    _figure(ctx, curves, cfg, target)
    ctx.note(
        "tanh RNN: this topic's unrolled Elman equations as a batched ensemble; LSTM and GRU: "
        f"{'our cells' if cfg.ours else 'torch kernels'}."
    )


def _train(ctx, net, group, cfg, val, target, kind):
    """Train one model (or an ensemble, one member per replicate in `group`); returns the
    evaluation steps, the validation MSE / baseline there (steps x members) and each member's
    steps to the target (inf: never)."""
    is_ens = isinstance(net, Ensemble)
    opt = ClipAdam(net.parameters(), lr=cfg.lr, max_norm=cfg.clip, members=is_ens)
    batches = adding_batches([rep.rng("batches") for rep in group], cfg.batch, cfg.length)
    x_val, y_val = val

    def loss_fn(m, batch):
        x, y = batch
        if is_ens:
            return ((m(x, per_member=True) - y) ** 2).mean(-1)
        return F.mse_loss(m(x), y)

    def all_reached(evals) -> bool:  # a function of the evaluations alone, so resumable
        return bool((np.stack([mse for _, mse in evals]) < target).any(0).all())

    with flush_denormals():  # vanishing gradients are subnormal floats: slow on a CPU
        res = fit(
            net,
            opt,
            loss_fn,
            batches,
            cfg.max_steps,
            ctx=ctx,
            desc=kind,
            evaluate=lambda step: member_mse(net, x_val, y_val),
            eval_every=cfg.eval_every,  # no extra evaluation at the last step (table note)
            stop=all_reached,
        )
    reached = [math.inf] * len(group)
    for step, mse in res.evals:
        for i, v in enumerate(mse):
            if v < target and reached[i] == math.inf:
                reached[i] = step
    if not res.evals:
        return np.zeros(0), np.zeros((0, len(group))), reached
    steps, values = zip(*res.evals, strict=True)
    return np.asarray(steps), np.stack(values) / ADDING_BASELINE, reached


def _figure(ctx: Lab, curves, cfg, target) -> None:
    fig, ax = new_figure(1, 1, size=(6, 3.8))
    colors = {"rnn": "C0", "lstm": "C1", "gru": "C2"}
    for kind, runs in curves.items():
        for i, (steps, values) in enumerate(runs):
            label = kind if i == 0 else None
            ax[0, 0].semilogy(steps, values, color=colors[kind], lw=1, label=label)
    ax[0, 0].axhline(0.1, color="gray", ls="--", lw=0.8, label="claim: 10% of baseline")
    ax[0, 0].axhline(target / ADDING_BASELINE, color="gray", ls=":", lw=0.8, label="stop target")
    ax[0, 0].set(
        xlabel="Adam step",
        ylabel="validation MSE / 0.167",
        title=f"adding problem, length {cfg.length}",
    )
    ax[0, 0].legend(fontsize=8)
    ctx.figure(
        "adding",
        fig,
        "Validation MSE over the mean-predictor baseline during training, one line per seed; "
        "a line ends where all seeds of its cell reached the stop target.",
    )
