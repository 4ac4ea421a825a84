"""Training helpers shared by the topics: the minibatch loop, MLPs, minibatches, accuracy.

`fit` is the one training loop of the labs: minibatches, an optional schedule, a progress bar
and metrics through the lab context, divergence detection, early stop, and batched ensembles
(a loss of shape (R,) trains R replicates at once, see `mlatlas.core.ensemble`). Loops that
*are* a lesson (gradient clipping, the engine-equals-torch comparison) stay in their labs.
"""

from __future__ import annotations

import gc
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from mlatlas.core import distributed, resume
from mlatlas.core.checkpoint import save_checkpoint
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.runtime import release_heap

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


@dataclass
class FitResult:
    """What `fit` saw: per-step losses (steps x R for an ensemble), which runs diverged, the
    number of steps taken and the evaluations recorded.

    diverged_at: the 1-based step whose loss first was NaN/inf (0 = never), per replicate;
    last_finite_loss: each replicate's last finite loss (NaN if it had none);
    evals: ``(step, value)`` for every call of the `evaluate` hook.
    """

    losses: np.ndarray
    diverged: np.ndarray  # bool per replicate (shape () for a single model)
    steps: int
    stopped_early: bool = False
    diverged_at: np.ndarray = field(default_factory=lambda: np.zeros((), dtype=np.int64))
    last_finite_loss: np.ndarray = field(default_factory=lambda: np.full((), np.nan))
    evals: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def final_loss(self) -> np.ndarray:
        return self.losses[-1] if len(self.losses) else np.full(self.diverged.shape, np.nan)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    steps: int,
    *,
    ctx: Any = None,
    desc: str = "train",
    schedule: Callable[[int], float] | None = None,
    log_every: int = 0,
    evaluate: Callable[[int], Any] | None = None,
    eval_every: int = 0,
    eval_last: bool = False,
    stop: Callable[[list[tuple[int, Any]]], bool] | None = None,
    on_step: Callable[[int, np.ndarray], bool | None] | None = None,
) -> FitResult:
    """Minimise ``loss_fn(model, batch)`` over the first `steps` batches.

    loss_fn returns a scalar, or a vector of R per-replicate losses (their sum is
    back-propagated: replicates sharing no parameter get their own gradients).
    schedule(t) sets every group's lr before step t = 0, 1, ...; ctx (a `Lab`) gives the
    progress bar and logs the mean loss every `log_every` steps.

    Measurements during training go through ``evaluate(step)``, called after every
    `eval_every`-th step (and after the last one with `eval_last`); its value (numbers,
    arrays, tuples, dicts) is kept in ``FitResult.evals``, and ``stop(evals)`` may end the fit
    early. Kept there, not in a closure, they are part of the checkpoint, so a killed run
    resumes to the same numbers (`mlatlas.core.resume`). ``on_step(step, losses)`` is for
    hooks that hold no result; a fit given one is not checkpointed, and a resumed run
    trains it again from its start.

    A replicate whose loss turns NaN/inf is diverged: its step and last finite loss are
    recorded, the weights that produced the bad loss are saved under ``checkpoints/``, a
    single model stops, an ensemble trains on with the others.

    Batch tensors on another device than the model's are moved to it. Under data parallelism
    (`mlatlas.core.distributed`, W processes) a single model trains on this rank's shard r of
    each batch (chunk r of W along dim 0) and its gradients are averaged over the ranks after
    the backward pass: for a loss that is a mean over the batch, (1/W)·Σ_r ∇L_r = ∇L, the
    step of the global batch; the recorded loss is the ranks' mean, the global batch's loss.
    An `Ensemble` fit runs replicated on every rank. A stop decided by `stop` or `on_step` is
    rank 0's, so no rank trains on alone.
    """
    journal, lab = resume.current()
    if ctx is None:
        ctx_bar, lab_ctx = None, lab
    else:
        ctx_bar, lab_ctx = ctx, ctx
    k = journal.begin_fit() if journal is not None and on_step is None else None
    it = iter(batches)
    st = _FitState.new(steps)
    if k is not None and journal is not None and journal.replaying:
        ck = journal.load(k, model, steps, desc)
        resume.load_model_state(model, ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        st = _FitState.from_checkpoint(ck, steps)
        for _ in range(st.done):  # the generators feeding the batches advance as they did
            next(it)
        resume.restore_rng(ck["rng"])
        if lab_ctx is not None:
            lab_ctx.divergences.extend(st.events)
        journal.reached(k)
        if ck["done"]:
            model.eval()
            return st.result()
    fp = resume.fingerprint(model, steps, desc) if k is not None and st.done == 0 else None
    model.train()
    collect = isinstance(model, Ensemble)
    # Data parallel (`mlatlas.core.distributed`): a single model trains on this rank's shard
    # of each batch with gradients averaged over the ranks; an ensemble runs replicated.
    split = distributed.active() and not collect
    if distributed.active() and collect and lab_ctx is not None:
        _note_once(lab_ctx, _REPLICATED_NOTE)
    stream = (torch.initial_seed(), "fit", desc, steps)  # same on every rank
    trained = list(model.parameters()) if split else []  # each once, tied weights too
    stats = _running_stats(model) if split else []
    device = _model_device(model)
    if device is not None and lab_ctx is not None and hasattr(lab_ctx, "fit_devices"):
        lab_ctx.fit_devices.add(str(device))
    saved_at = time.monotonic()
    todo = range(st.done, steps)
    bar = ctx_bar.progress(todo, desc=desc) if ctx_bar is not None else todo
    for t in bar:
        if schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = schedule(t)
        batch = next(it)
        if split:
            batch = distributed.shard(batch)
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        if split:
            with distributed.rank_stream(*stream, t):
                loss = loss_fn(model, batch)
                if loss.dim() != 0:
                    raise ValueError("a data-parallel fit trains one model: a scalar loss")
                loss.backward()
            value = _average_step(trained, stats, loss)
        else:
            loss = loss_fn(model, batch)
            value = loss.detach().double().cpu().numpy()
            loss.sum().backward()
        st.record(value)
        if st.new_divergence(value):
            st.events.append(_divergence_event(model, value, st, t, k, desc, lab_ctx))
        optimizer.step()
        if collect and (t + 1) % 100 == 0:
            gc.collect()
        if collect and (t + 1) % 20 == 0:
            release_heap()
        if ctx_bar is not None and log_every and (t + 1) % log_every == 0:
            bad = ~np.isfinite(value)
            ctx_bar.log(
                step=t + 1, loss=float(np.nanmean(value)) if not bad.all() else float("nan")
            )
        decided = False
        if evaluate is not None and (
            (eval_every and (t + 1) % eval_every == 0) or (eval_last and t + 1 == steps)
        ):
            st.evals.append((t + 1, evaluate(t + 1)))
            model.train()
            decided = stop is not None
            if stop is not None and stop(st.evals):
                st.stopped = True
        if on_step is not None:
            decided = True
            if on_step(t + 1, value):
                st.stopped = True
        if decided:  # a stop read from the clock differs between ranks: rank 0 decides
            st.stopped = distributed.agree(st.stopped)
        if st.stopped or st.diverged.all():
            break
        if k is not None and time.monotonic() - saved_at >= journal.interval_s:
            journal.save(k, st.checkpoint(model, optimizer, steps, desc, fp, done=False))
            saved_at = time.monotonic()
    model.eval()
    if k is not None:
        journal.save(k, st.checkpoint(model, optimizer, steps, desc, fp, done=True))
    return st.result()


_REPLICATED_NOTE = (
    "data parallel: the ensemble fits ran replicated on every process (correct, no speed-up); "
    "only single-model fits split their batches"
)


def _note_once(lab: Any, text: str) -> None:
    if text not in lab.notes:
        lab.note(text)


def _running_stats(model: nn.Module) -> list[torch.Tensor]:
    """BatchNorm's running mean and variance: updated by each rank's forward from its own
    shard, so averaged over the ranks to keep every rank's model the same."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            out += [b for b in (m.running_mean, m.running_var) if b is not None]
    return out


def _average_step(
    params: list[torch.Tensor], stats: list[torch.Tensor], loss: torch.Tensor
) -> np.ndarray:
    """Average this step's gradients, running statistics and loss over the ranks (one
    all-reduce per dtype); returns the global loss. A parameter without a gradient has none on
    every rank (same model, same code), so skipping it keeps the ranks' buffers aligned.

    The mean of the ranks' running means is the running mean of the global batch (the update
    is linear in the batch mean); the running variance so averaged leaves out the spread
    between the shards' means. The forward pass itself normalizes each shard by its own
    statistics, as DistributedDataParallel does without SyncBatchNorm."""
    grads = [p.grad for p in params if p.grad is not None]
    if any(g.is_sparse for g in grads):
        raise ValueError("data-parallel fit averages dense gradients only")
    value = loss.detach().clone()
    distributed.all_reduce_mean_([*grads, *stats, value])
    return value.double().cpu().numpy()


def _model_device(model: nn.Module) -> torch.device | None:
    for p in itertools.chain(model.parameters(), model.buffers()):
        if not p.is_meta:
            return p.device
    return None


def to_device(batch: Any, device: torch.device | None) -> Any:
    """`batch` with every tensor on `device` (tuples, lists and dicts kept), so batches built
    on the CPU feed a model on the GPU; a host tensor goes through pinned memory and a
    non-blocking copy, which overlaps the transfer with the work already queued on the GPU."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.device == device:
            return batch
        if device.type == "cuda" and batch.device.type == "cpu" and batch.is_contiguous():
            # pinned pages copy asynchronously; an expanded view (shared memory) cannot be pinned
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class _FitState:
    """Everything of a fit in progress that is not the model or the optimizer."""

    steps: int
    losses: np.ndarray | None
    done: int
    diverged: np.ndarray
    diverged_at: np.ndarray
    last_finite: np.ndarray
    evals: list[tuple[int, Any]]
    events: list[dict[str, Any]]
    stopped: bool = False
    fingerprint: str | None = None

    @classmethod
    def new(cls, steps: int) -> _FitState:
        z = np.zeros((), dtype=bool)
        return cls(steps, None, 0, z, np.zeros((), dtype=np.int64), np.full((), np.nan), [], [])

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], steps: int) -> _FitState:
        done = int(ck["step"])
        got = ck["losses"].numpy()
        losses = None
        if done:
            # One preallocated array, not a list of per-step arrays: thousands of tiny
            # allocations between the step's large buffers fragment the heap.
            losses = np.empty((steps, *got.shape[1:]))
            losses[:done] = got
        return cls(
            steps,
            losses,
            done,
            ck["diverged"].numpy().copy(),
            ck["diverged_at"].numpy().copy(),
            ck["last_finite"].numpy().copy(),
            resume.decode_evals(ck["evals"]),
            json.loads(ck["events"]),
            bool(ck["stopped"]),
            ck["fingerprint"],
        )

    def record(self, value: np.ndarray) -> None:
        """Store one step's loss; the first step fixes the shape (scalar or per replicate)."""
        if self.losses is None:
            self.losses = np.empty((self.steps, *value.shape))
            self.diverged = np.zeros(value.shape, dtype=bool)
            self.diverged_at = np.zeros(value.shape, dtype=np.int64)
            self.last_finite = np.full(value.shape, np.nan)
        self.losses[self.done] = value
        self.done += 1

    def new_divergence(self, value: np.ndarray) -> bool:
        finite = np.isfinite(value)
        self.last_finite = np.where(finite & ~self.diverged, value, self.last_finite)
        new = ~finite & ~self.diverged
        if new.any():
            self.diverged_at = np.where(new, self.done, self.diverged_at)
            self.diverged = self.diverged | new
            return True
        return False

    def checkpoint(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        steps: int,
        desc: str,
        fp: str | None,
        *,
        done: bool,
    ) -> dict[str, Any]:
        return {
            "desc": desc,
            "steps": steps,
            "fingerprint": fp if fp is not None else self.fingerprint,
            "step": self.done,
            "done": done,
            "stopped": self.stopped,
            "model": resume.model_state(model),
            "optimizer": optimizer.state_dict(),
            "rng": resume.capture_rng(),
            "losses": torch.from_numpy(
                self.losses[: self.done].copy() if self.losses is not None else np.empty((0,))
            ),
            "diverged": torch.from_numpy(np.asarray(self.diverged).copy()),
            "diverged_at": torch.from_numpy(np.asarray(self.diverged_at).copy()),
            "last_finite": torch.from_numpy(np.asarray(self.last_finite, dtype=np.float64).copy()),
            "evals": resume.encode_evals(self.evals),
            "events": json.dumps(self.events),
        }

    def result(self) -> FitResult:
        if self.losses is None or self.done == 0:
            return FitResult(np.empty((0,)), np.zeros((), dtype=bool), 0, self.stopped)
        return FitResult(
            self.losses[: self.done].copy(),
            self.diverged.astype(bool),
            self.done,
            self.stopped,
            self.diverged_at.copy(),
            self.last_finite.copy(),
            list(self.evals),
        )


def _divergence_event(
    model: nn.Module, value: np.ndarray, st: _FitState, t: int, k: int | None, desc: str, lab: Any
) -> dict[str, Any]:
    """Record a new divergence, keeping the weights that produced the bad loss."""
    members = np.flatnonzero(np.atleast_1d(st.diverged_at == t + 1)).tolist()
    event: dict[str, Any] = {
        "fit": k,
        "desc": desc,
        "step": t + 1,
        "members": members if value.shape else None,
        "last_finite_loss": np.atleast_1d(st.last_finite)[members].tolist()
        if value.shape
        else float(st.last_finite),
        "checkpoint": None,
    }
    if lab is not None:
        name = f"diverged-{'x' if k is None else k}-step{t + 1}"
        if getattr(lab, "writes", True):  # data parallel: rank 0 alone writes files
            save_checkpoint(lab.checkpoint_path(name), resume.model_state(model), dict(event))
        event["checkpoint"] = f"checkpoints/{name}.safetensors"
        lab.divergences.append(event)
    return event


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
    ctx: Any = None,
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
