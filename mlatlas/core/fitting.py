"""What `mlatlas.core.train.fit` keeps beside its loop: the state of a fit in progress, its
checkpoints in the run's resume journal, one update of a step (locally or data parallel), and
the record of a divergence.

`fit` reads top to bottom as batch -> loss -> backward -> step -> record; these collaborators
hold what a reader of the loop need not see at once:

* `FitState`: the losses so far, which replicates diverged and when, the evaluations;
* `Checkpoints`: the fit's file in the resume journal (`mlatlas.core.resume`). It saves the
  model, every optimizer, every global RNG, the fit's own step-noise generator, the state of
  a stateful batch source and of any other stateful object handed to the fit; on resume it
  restores all of them, so a step that draws its own noise continues the draws it made;
* `Stepper`: one update's loss and backward pass; under data parallelism it shards the batch,
  gives each rank its own random stream and averages the gradients over the ranks;
* `divergence_event`: a replicate's loss turned NaN/inf, with the weights that produced it.
"""

from __future__ import annotations

import gc
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from mlatlas.core import distributed, resume
from mlatlas.core.checkpoint import save_checkpoint
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.runtime import release_heap
from mlatlas.core.seeding import derive_seed

LossFn = Callable[..., torch.Tensor]  # loss_fn(model, batch) or loss_fn(model, batch, noise)
Update = tuple[torch.optim.Optimizer, LossFn]


class FitContext(Protocol):
    """What `fit` uses of a lab (`mlatlas.core.lab.Lab` is one): a progress bar, the metrics
    log, notes, and the lists the run record reads back."""

    notes: list[str]
    divergences: list[dict[str, Any]]
    fit_devices: set[str]
    writes: bool  # False on data-parallel ranks other than 0

    def progress(self, iterable: Iterable[Any], desc: str = "") -> Iterable[Any]: ...

    def log(self, step: int | None = None, **metrics: Any) -> None: ...

    def note(self, text: str) -> None: ...

    def checkpoint_path(self, name: str) -> Path: ...


@runtime_checkable
class Stateful(Protocol):
    """An object whose state a checkpoint can hold: ``state_dict()`` returns tensors, numbers,
    strings and plain containers of them (what ``torch.load(weights_only=True)`` reads)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class FitResult:
    """What `fit` saw: per-step losses, which runs diverged, the number of steps taken and the
    evaluations recorded.

    losses: shape (steps,) for one model, (steps, R) for an R-member ensemble, and with a
    second axis of size U, (steps, U[, R]), for a fit of U alternating updates per step;
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


def pair_updates(
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
    loss_fn: LossFn | Sequence[LossFn],
) -> list[Update]:
    """The (optimizer, loss) updates of one step: one, or several run in order (a GAN's
    discriminator then generator), each seeing the weights the previous one stepped."""
    if isinstance(optimizer, torch.optim.Optimizer) or not isinstance(optimizer, Sequence):
        if isinstance(loss_fn, Sequence):
            raise ValueError("one optimizer takes one loss function")
        return [(optimizer, loss_fn)]
    if not isinstance(loss_fn, Sequence) or len(loss_fn) != len(optimizer) or not optimizer:
        raise ValueError("alternating updates: one loss function per optimizer, in step order")
    return list(zip(optimizer, loss_fn, strict=True))


@dataclass
class FitState:
    """Everything of a fit in progress that is not the model, the optimizers or the sources.

    With several updates per step a step's loss has a leading axis, one entry per update; a
    replicate has diverged when any of its updates' losses is not finite."""

    steps: int
    multi: bool  # several updates per step
    losses: np.ndarray | None = None
    done: int = 0
    diverged: np.ndarray = field(default_factory=lambda: np.zeros((), dtype=bool))
    diverged_at: np.ndarray = field(default_factory=lambda: np.zeros((), dtype=np.int64))
    last_finite: np.ndarray = field(default_factory=lambda: np.full((), np.nan))
    evals: list[tuple[int, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    fingerprint: str | None = None
    finished: bool = False  # restored from the checkpoint of a fit that had ended

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any], steps: int, multi: bool) -> FitState:
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
            multi,
            losses,
            done,
            ck["diverged"].numpy().copy(),
            ck["diverged_at"].numpy().copy(),
            ck["last_finite"].numpy().copy(),
            resume.decode_evals(ck["evals"]),
            json.loads(ck["events"]),
            bool(ck["stopped"]),
            ck["fingerprint"],
            bool(ck["done"]),
        )

    def record(self, values: list[np.ndarray]) -> np.ndarray:
        """Store one step's loss (one value per update); the first step fixes the shape."""
        value = np.stack(values) if self.multi else values[0]
        if self.losses is None:
            shape = value.shape[1:] if self.multi else value.shape
            self.losses = np.empty((self.steps, *value.shape))
            self.diverged = np.zeros(shape, dtype=bool)
            self.diverged_at = np.zeros(shape, dtype=np.int64)
            self.last_finite = np.full(shape, np.nan)
        self.losses[self.done] = value
        self.done += 1
        return value

    def new_divergence(self, value: np.ndarray) -> bool:
        finite = np.isfinite(value).all(0) if self.multi else np.isfinite(value)
        shown = value[-1] if self.multi else value
        self.last_finite = np.where(finite & ~self.diverged, shown, self.last_finite)
        new = ~finite & ~self.diverged
        if new.any():
            self.diverged_at = np.where(new, self.done, self.diverged_at)
            self.diverged = self.diverged | new
            return True
        return False

    def logged(self, value: np.ndarray) -> dict[str, float]:
        """The step's mean loss over the replicates still finite (per update: loss_0, ...)."""

        def mean(v: np.ndarray) -> float:
            return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

        if self.multi:
            return {f"loss_{i}": mean(v) for i, v in enumerate(value)}
        return {"loss": mean(value)}

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "step": self.done,
            "stopped": self.stopped,
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


class Checkpoints:
    """Fit number `k` of the run's resume journal: restores the fit on resume, saves it every
    `journal.interval_s` seconds and when it ends.

    Besides the model and the optimizers a checkpoint holds the fit's step-noise generator
    (``noise``), the state of a `Stateful` batch source (restored instead of replayed: a
    source that depends on the model, such as rollouts of the policy being trained, cannot be
    replayed) and of every object in ``state`` (an environment, a replay buffer)."""

    def __init__(
        self,
        journal: resume.Journal,
        model: nn.Module,
        updates: list[Update],
        source: Any,
        steps: int,
        desc: str,
        noise: torch.Generator | None,
        state: Mapping[str, Stateful],
    ) -> None:
        self.journal, self.k = journal, journal.begin_fit()
        self.model, self.updates, self.steps, self.desc = model, updates, steps, desc
        self.source = source if isinstance(source, Stateful) else None
        self.noise, self.state = noise, dict(state)
        self.fp: str | None = None
        self.saved_at = time.monotonic()

    def restore(self, it: Iterator[Any], st: FitState, lab: FitContext | None) -> FitState:
        """On resume, the fit's checkpoint: weights, optimizers, the batch stream where it
        stood, every generator, the losses and evaluations so far. Otherwise `st` as given."""
        if self.journal.replaying:
            ck = self.journal.load(self.k, self.model, self.steps, self.desc)
            resume.load_model_state(self.model, ck["model"])
            states = ck["optimizer"] if isinstance(ck["optimizer"], list) else [ck["optimizer"]]
            for (opt, _), s in zip(self.updates, states, strict=True):
                opt.load_state_dict(s)
            st = FitState.from_checkpoint(ck, self.steps, st.multi)
            if self.source is not None:
                self.source.load_state_dict(ck["source"])
            else:  # the generators feeding the batches advance as they did
                for _ in range(st.done):
                    next(it)
            resume.restore_rng(ck["rng"])
            if self.noise is not None:
                self.noise.set_state(ck["noise"])
            for name, obj in self.state.items():
                obj.load_state_dict(ck["state"][name])
            if lab is not None:
                lab.divergences.extend(st.events)
            self.journal.reached(self.k)
        self.fp = resume.fingerprint(self.model, self.steps, self.desc) if st.done == 0 else None
        return st

    def due(self) -> bool:
        return time.monotonic() - self.saved_at >= self.journal.interval_s

    def save(self, st: FitState, *, done: bool) -> None:
        opts = [opt.state_dict() for opt, _ in self.updates]
        self.journal.save(
            self.k,
            {
                "desc": self.desc,
                "steps": self.steps,
                "fingerprint": self.fp if self.fp is not None else st.fingerprint,
                "done": done,
                "model": resume.model_state(self.model),
                "optimizer": opts if len(opts) > 1 else opts[0],
                "rng": resume.capture_rng(),
                "noise": self.noise.get_state() if self.noise is not None else None,
                "source": self.source.state_dict() if self.source is not None else None,
                "state": {name: obj.state_dict() for name, obj in self.state.items()},
                **st.to_checkpoint(),
            },
        )
        self.saved_at = time.monotonic()


_REPLICATED_NOTE = (
    "data parallel: the ensemble fits ran replicated on every process (correct, no speed-up); "
    "only single-model fits split their batches"
)


class Stepper:
    """The loss and backward pass of one update, on this process or data parallel.

    Under data parallelism (`mlatlas.core.distributed`, W processes) a single model trains on
    this rank's shard r of each batch (chunk r of W along dim 0) and its gradients are averaged
    over the ranks after the backward pass: for a loss that is a mean over the batch,
    (1/W)·Σ_r ∇L_r = ∇L, the step of the global batch; the recorded loss is the ranks' mean.
    Random draws inside a step differ between the shards: the global generators are seeded
    per rank and step, and the step-noise generator of rank r > 0 is reseeded from its seed
    and r. An `Ensemble` fit runs replicated on every rank."""

    def __init__(
        self,
        model: nn.Module,
        lab: FitContext | None,
        noise: torch.Generator | None,
        steps: int,
        desc: str,
        multi: bool,
    ) -> None:
        self.model, self.noise, self.multi = model, noise, multi
        self.ensemble = isinstance(model, Ensemble)
        self.split = distributed.active() and not self.ensemble
        replicated = distributed.active() and self.ensemble
        if replicated and lab is not None and _REPLICATED_NOTE not in lab.notes:
            lab.note(_REPLICATED_NOTE)
        if self.split and noise is not None and distributed.rank() != 0:
            noise.manual_seed(derive_seed(noise.initial_seed(), "rank", distributed.rank()))
        self.stream = (torch.initial_seed(), "fit", desc, steps)  # the same on every rank
        self.trained = list(model.parameters()) if self.split else []  # tied weights once
        self.stats = _running_stats(model) if self.split else []
        self.device = model_device(model)
        if self.device is not None and lab is not None:
            lab.fit_devices.add(str(self.device))

    def prepare(self, batch: Any) -> Any:
        """This rank's part of the batch, on the model's device."""
        return to_device(distributed.shard(batch) if self.split else batch, self.device)

    def loss_backward(self, loss_fn: LossFn, batch: Any, t: int, i: int) -> np.ndarray:
        """Update i's loss at step t, back-propagated; returns it as NumPy (per replicate)."""
        args = (self.model, batch) if self.noise is None else (self.model, batch, self.noise)
        if not self.split:
            loss = loss_fn(*args)
            loss.sum().backward()  # replicates share no parameter: each gets its own gradient
            return loss.detach().double().cpu().numpy()
        keys = (*self.stream, t, i) if self.multi else (*self.stream, t)
        with distributed.rank_stream(*keys):
            loss = loss_fn(*args)
            if loss.dim() != 0:
                raise ValueError("a data-parallel fit trains one model: a scalar loss")
            loss.backward()
        return _average_step(self.trained, self.stats, loss)

    def housekeeping(self, t: int) -> None:
        """An ensemble's many large buffers: collect and hand freed pages back now and then."""
        if self.ensemble and (t + 1) % 100 == 0:
            gc.collect()
        if self.ensemble and (t + 1) % 20 == 0:
            release_heap()


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


def model_device(model: nn.Module) -> torch.device | None:
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


def divergence_event(
    model: nn.Module, st: FitState, t: int, k: int | None, desc: str, lab: FitContext | None
) -> dict[str, Any]:
    """Record a new divergence, keeping the weights that produced the bad loss."""
    shape = st.diverged.shape
    members = np.flatnonzero(np.atleast_1d(st.diverged_at == t + 1)).tolist()
    event: dict[str, Any] = {
        "fit": k,
        "desc": desc,
        "step": t + 1,
        "members": members if shape else None,
        "last_finite_loss": np.atleast_1d(st.last_finite)[members].tolist()
        if shape
        else float(st.last_finite),
        "checkpoint": None,
    }
    if lab is not None:
        name = f"diverged-{'x' if k is None else k}-step{t + 1}"
        if lab.writes:  # data parallel: rank 0 alone writes files
            save_checkpoint(lab.checkpoint_path(name), resume.model_state(model), dict(event))
        event["checkpoint"] = f"checkpoints/{name}.safetensors"
        lab.divergences.append(event)
    return event
