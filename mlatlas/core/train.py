"""Training helpers shared by the topics: the minibatch loop, MLPs, minibatches, accuracy.

`fit` is the one training loop of the labs: minibatches, an optional schedule, a progress bar
and metrics through the lab context, divergence detection, early stop, batched ensembles (a
loss of shape (R,) trains R replicates at once, see `mlatlas.core.ensemble`), noise drawn
inside a step from a generator the fit checkpoints, several alternating updates per step (a
GAN), and batch sources that are not a fixed dataset (rollouts). Its collaborators, resume,
data parallelism and divergence records, are in `mlatlas.core.fitting`. Loops that *are* a
lesson (gradient clipping, the engine-equals-torch comparison) stay in their labs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mlatlas.core import distributed, resume
from mlatlas.core.fitting import (  # FitResult, Stateful: part of fit's API
    Checkpoints,
    FitContext,
    FitResult,
    FitState,
    LossFn,
    Stateful,
    Stepper,
    divergence_event,
    pair_updates,
)

ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def make_mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers of the given sizes, `activation` between them, none after the last."""
    if activation not in ACTIVATION_MODULES:
        raise ValueError(f"unknown activation {activation!r}; known: {list(ACTIVATION_MODULES)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATION_MODULES[activation]())
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batches_for_steps(
    n: int, batch_size: int, steps: int, rng: np.random.Generator
) -> Iterator[torch.Tensor]:
    """Exactly `steps` minibatches of indices, reshuffling at each epoch boundary."""
    done = 0
    while done < steps:
        for idx in minibatches(n, batch_size, rng):
            if len(idx) < batch_size and n >= batch_size:
                continue  # keep every step the same size
            yield torch.from_numpy(idx)
            done += 1
            if done == steps:
                return


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Indices of one shuffled epoch in batches (the last one may be smaller)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> float:
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def rmse(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> float:
    pred, target = (t.detach().cpu() if isinstance(t, torch.Tensor) else t for t in (pred, target))
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean(diff**2)))


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
    loss_fn: LossFn | Sequence[LossFn],
    batches: Iterable[Any],
    steps: int,
    *,
    ctx: FitContext | None = None,
    desc: str = "train",
    schedule: Callable[[int], float] | None = None,
    log_every: int = 0,
    evaluate: Callable[[int], Any] | None = None,
    eval_every: int = 0,
    eval_last: bool = False,
    stop: Callable[[list[tuple[int, Any]]], bool] | None = None,
    on_step: Callable[[int, np.ndarray], bool | None] | None = None,
    noise: torch.Generator | None = None,
    state: Mapping[str, Stateful] | None = None,
) -> FitResult:
    """Minimise ``loss_fn(model, batch)`` over the first `steps` batches.

    loss_fn returns a scalar, or a vector of R per-replicate losses (their sum is
    back-propagated: replicates sharing no parameter get their own gradients).
    schedule(t) sets every group's lr before step t = 0, 1, ...; ctx (a `Lab`) gives the
    progress bar and logs the mean loss every `log_every` steps.

    **Noise inside a step** (a VAE's ε, a diffusion model's t and noise, a GAN's z) comes from
    ``noise``, a generator the fit owns from then on (e.g. ``rep.generator("eps")``): the loss
    is called ``loss_fn(model, batch, noise)``, and the generator's state is checkpointed with
    the fit, so a resumed run draws what the killed one would have. Dropout and other draws
    from the global generators are checkpointed too.

    **Several updates per step**: a sequence of optimizers with one loss function each (a GAN:
    ``(opt_d, opt_g), (d_loss, g_loss)``) runs them in order, each on the weights the one
    before it stepped; `model` holds all the trained modules (an ``nn.ModuleDict``) and the
    losses gain an axis, one entry per update.

    **Batches that are not a fixed dataset**: a `Stateful` batch source (``state_dict`` /
    ``load_state_dict``, its own iterator), e.g. rollouts collected with the policy being
    trained, is checkpointed and restored instead of replayed; objects in ``state`` (an
    environment) are checkpointed too.

    Measurements during training go through ``evaluate(step)``, called after every
    `eval_every`-th step (and after the last one with `eval_last`); its value (numbers,
    arrays, tuples, dicts) is kept in ``FitResult.evals``, and ``stop(evals)`` may end the fit
    early. Kept there, not in a closure, they are part of the checkpoint, so a killed run
    resumes to the same numbers (`mlatlas.core.resume`). ``on_step(step, losses)`` is for
    hooks that hold no result; a fit given one is not checkpointed, and a resumed run
    trains it again from its start.

    A replicate whose loss turns NaN/inf is diverged: its step and last finite loss are
    recorded, the weights that produced the bad loss are saved under ``checkpoints/``, a
    single model stops, an ensemble trains on with the others. Batch tensors are moved to the
    model's device; data parallelism is `mlatlas.core.fitting.Stepper`'s. A stop decided by
    `stop` or `on_step` is rank 0's, so no rank trains on alone.
    """
    updates = pair_updates(optimizer, loss_fn)
    journal, active_lab = resume.current()
    lab = ctx if ctx is not None else active_lab
    it = iter(batches)
    st = FitState(steps, multi=len(updates) > 1)
    ck = None
    if journal is not None and on_step is None:
        ck = Checkpoints(journal, model, updates, batches, steps, desc, noise, state or {})
        st = ck.restore(it, st, lab)
        if st.finished:
            model.eval()
            return st.result()
    stepper = Stepper(model, lab, noise, steps, desc, st.multi)
    model.train()
    todo = range(st.done, steps)
    for t in ctx.progress(todo, desc=desc) if ctx is not None else todo:
        if schedule is not None:
            for opt, _ in updates:
                for group in opt.param_groups:
                    group["lr"] = schedule(t)
        batch = stepper.prepare(next(it))
        values = []
        for i, (opt, loss) in enumerate(updates):
            opt.zero_grad(set_to_none=True)
            values.append(stepper.loss_backward(loss, batch, t, i))
            if i < len(updates) - 1:
                opt.step()  # the next update sees the weights this one stepped
        value = st.record(values)
        if st.new_divergence(value):
            st.events.append(divergence_event(model, st, t, ck and ck.k, desc, lab))
        updates[-1][0].step()
        stepper.housekeeping(t)
        if ctx is not None and log_every and (t + 1) % log_every == 0:
            ctx.log(step=t + 1, **st.logged(value))
        if _ends(t + 1, value, st, model, evaluate, eval_every, eval_last, stop, on_step):
            break
        if ck is not None and ck.due():
            ck.save(st, done=False)
    model.eval()
    if ck is not None:
        ck.save(st, done=True)
    return st.result()


def _ends(
    step: int,
    value: np.ndarray,
    st: FitState,
    model: nn.Module,
    evaluate: Callable[[int], Any] | None,
    eval_every: int,
    eval_last: bool,
    stop: Callable[[list[tuple[int, Any]]], bool] | None,
    on_step: Callable[[int, np.ndarray], bool | None] | None,
) -> bool:
    """Evaluate when due, ask `stop` and `on_step`; True when the fit ends after this step."""
    decided = False
    if evaluate is not None and (
        (eval_every and step % eval_every == 0) or (eval_last and step == st.steps)
    ):
        st.evals.append((step, evaluate(step)))
        model.train()
        decided = stop is not None
        if stop is not None and stop(st.evals):
            st.stopped = True
    if on_step is not None:
        decided = True
        if on_step(step, value):
            st.stopped = True
    if decided:  # a stop read from the clock differs between ranks: rank 0 decides
        st.stopped = distributed.agree(st.stopped)
    return bool(st.stopped or st.diverged.all())


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int,
    rng: np.random.Generator,
    lr: float = 1e-3,
    on_step: Callable[[int, float], None] | None = None,
    schedule: Callable[[int], float] | None = None,
    ctx: FitContext | None = None,
) -> nn.Module:
    """Adam on cross-entropy for `steps` minibatches (a thin use of `fit`);
    ``on_step(step, loss)`` runs after each step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    def hook(step: int, loss: np.ndarray) -> None:
        if on_step is not None:
            on_step(step, float(loss))

    fit(
        model,
        opt,
        loss_fn,
        batches_for_steps(len(x), batch_size, steps, rng),
        steps,
        ctx=ctx,
        schedule=schedule,
        on_step=hook if on_step is not None else None,
    )
    return model
