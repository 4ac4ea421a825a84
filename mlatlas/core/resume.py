"""Resume a killed run to the same numbers: the journal of `fit` calls.

A lab is an ordinary Python function, so its frames cannot be saved. What can be saved is
the state of each call of the core training loop, `fit`, and the rest of a lab is
deterministic given its seed. So a resumed run *replays* the lab from its first line:

* every `fit` of a run gets a number k = 0, 1, ... in call order and one checkpoint file,
  ``checkpoints/resume/fit-<k>.pt``: model, optimizers, every global RNG state (Python,
  NumPy, torch), the fit's step-noise generator, a stateful batch source and other stateful
  objects handed to the fit, the step, the losses so far and the recorded evaluations. It
  is rewritten every `interval` seconds of wall clock (default 60,
  ``MLATLAS_CHECKPOINT_EVERY``) and when the fit ends (``done``);
* on resume, a fit whose checkpoint is ``done`` is not trained again: the model and the
  optimizer take its final state, the batch iterator is advanced past the batches it drew
  (so the generators feeding it stand where they stood), the RNG states are restored, and
  `fit` returns what it returned then. The fit that was cut short continues from its last
  checkpoint; every later line of the lab runs as in the first run;
* a fingerprint (sha256 of the starting weights, the step budget and the description)
  proves each replayed fit starts where the original did; if not, the resume stops with
  `ResumeError` instead of mixing two runs;
* ``metrics.jsonl`` is cut back to what was written when the last checkpoint was saved, and
  the lab's logging is silent until the replay reaches that checkpoint, so the log is the
  one an uninterrupted run writes.

Files are written atomically (temporary file, fsync, rename) and read with
``torch.load(weights_only=True)``, which unpickles nothing but tensors and plain containers.
Work outside `fit` (a hand-written loop that is itself the lesson, an evaluation) is redone
on resume; it is deterministic, so the numbers are the same.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mlatlas.core.checkpoint import load_torch_state, save_torch_state
from mlatlas.core.fileio import complete_jsonl_size
from mlatlas.core.lab import ConfigError

if TYPE_CHECKING:
    from mlatlas.core.fitting import FitContext

DEFAULT_INTERVAL_S = 60.0
FORMAT = 1


class ResumeError(ConfigError):
    """A run cannot be resumed (not a run folder, already complete, or it replays differently)."""


def checkpoint_interval() -> float:
    """Seconds between checkpoints inside one fit: ``MLATLAS_CHECKPOINT_EVERY`` or 60."""
    raw = os.environ.get("MLATLAS_CHECKPOINT_EVERY", "")
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"MLATLAS_CHECKPOINT_EVERY={raw!r} is not a number of seconds") from None
    if value < 0 or math.isnan(value):
        raise ConfigError(f"MLATLAS_CHECKPOINT_EVERY={raw!r} must be >= 0 seconds")
    return value


# -- RNG states ------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """Every global generator's state, in types ``torch.load(weights_only=True)`` accepts."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_gauss": [int(np_state["has_gauss"]), float(np_state["gauss"])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": state["numpy_key"].numpy().astype(np.uint32),
                "pos": state["numpy_pos"],
            },
            "has_gauss": has_gauss,
            "gauss": cached,
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- evaluations: plain values <-> JSON ------------------------------------------------------
def _encode(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__ndarray__": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, torch.Tensor):
        return _encode(x.detach().cpu().numpy())
    if isinstance(x, tuple):
        return {"__tuple__": [_encode(v) for v in x]}
    if isinstance(x, list):
        return [_encode(v) for v in x]
    if isinstance(x, dict):
        return {"__dict__": [[_encode(k), _encode(v)] for k, v in x.items()]}
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError(f"an evaluation returns numbers, arrays, tuples, lists or dicts, not {type(x)}")


def _decode(x: Any) -> Any:
    if isinstance(x, list):
        return [_decode(v) for v in x]
    if isinstance(x, dict):
        if "__ndarray__" in x:
            return np.asarray(x["__ndarray__"], dtype=x["dtype"])
        if "__tuple__" in x:
            return tuple(_decode(v) for v in x["__tuple__"])
        if "__dict__" in x:
            return {_decode(k): _decode(v) for k, v in x["__dict__"]}
    return x


def encode_evals(evals: list[tuple[int, Any]]) -> str:
    return json.dumps([[s, _encode(v)] for s, v in evals])


def decode_evals(text: str) -> list[tuple[int, Any]]:
    return [(int(s), _decode(v)) for s, v in json.loads(text)]


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights and buffers on the CPU, without shape-only ("meta") tensors, such as
    the template module of an `Ensemble`."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if not v.is_meta}


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    meta = {k for k, v in model.state_dict().items() if v.is_meta}
    if unexpected or set(missing) - meta:
        raise ResumeError(
            f"the checkpoint does not fit the model (missing {sorted(set(missing) - meta)}, "
            f"unexpected {sorted(unexpected)})"
        )


def fingerprint(model: torch.nn.Module, steps: int, desc: str) -> str:
    """sha256 of the starting weights and buffers, the step budget and the description."""
    h = hashlib.sha256(f"{steps}|{desc}".encode())
    for name, t in model_state(model).items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class Journal:
    """The fit checkpoints of one run folder, and where a resumed run stands in its replay."""

    def __init__(self, run_dir: Path, interval_s: float | None = None, resuming: bool = False):
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "checkpoints" / "resume"
        self.interval_s = checkpoint_interval() if interval_s is None else interval_s
        self.next_fit = 0
        self.write_error: str | None = None
        self.target: tuple[int, int, bool] | None = None  # (fit, step, done) to replay up to
        if resuming:
            self.target = self._latest()
            self._cut_metrics()

    @property
    def replaying(self) -> bool:
        return self.target is not None

    def path(self, k: int) -> Path:
        return self.folder / f"fit-{k:04d}.pt"

    def _files(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.iterdir():
            m = re.fullmatch(r"fit-(\d{4,})\.pt", p.name)
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out)

    def _latest(self) -> tuple[int, int, bool] | None:
        files = self._files()
        if not files:
            return None
        k, p = files[-1]
        ck = load_torch_state(p)
        return (k, int(ck["step"]), bool(ck["done"]))

    def _cut_metrics(self) -> None:
        """Cut metrics.jsonl back to its size at the latest checkpoint (0 with none)."""
        metrics = self.run_dir / "metrics.jsonl"
        if not metrics.exists():
            return
        offset = 0
        if self.target is not None:
            offset = int(load_torch_state(self.path(self.target[0]))["metrics_offset"])
        offset = min(offset, complete_jsonl_size(metrics))
        with open(metrics, "r+b") as f:
            f.truncate(offset)

    def progress(self) -> dict[str, Any] | None:
        """Where the run got to: the latest checkpoint's fit, description, step and budget."""
        files = self._files()
        if not files:
            return None
        k, p = files[-1]
        try:
            ck = load_torch_state(p)
        except Exception:
            return {"fit": k, "step": None, "steps": None, "desc": "?", "done": False}
        return {
            "fit": k,
            "step": int(ck["step"]),
            "steps": int(ck["steps"]),
            "desc": str(ck["desc"]),
            "done": bool(ck["done"]),
        }

    def begin_fit(self) -> int:
        k = self.next_fit
        self.next_fit += 1
        return k

    def load(self, k: int, model: torch.nn.Module, steps: int, desc: str) -> dict[str, Any]:
        """Checkpoint k, after checking the replayed fit starts where the original did."""
        ck = load_torch_state(self.path(k))
        if ck.get("format") != FORMAT:
            raise ResumeError(f"{self.path(k)}: unknown checkpoint format {ck.get('format')}")
        if ck["fingerprint"] != fingerprint(model, steps, desc):
            raise ResumeError(
                f"cannot resume {self.run_dir}: fit {k} ({desc!r}) starts from other weights "
                "or settings than in the killed run, so the two would not be one run; "
                "start a new run instead"
            )
        return ck

    def reached(self, k: int) -> None:
        """The replay has restored fit k's checkpoint; past the target, the lab runs live."""
        if self.target is not None and k >= self.target[0]:
            self.target = None

    def save(self, k: int, state: dict[str, Any]) -> None:
        """Write fit k's checkpoint. A failed write (a full disk) must not kill the run that
        the checkpoint is there to protect: checkpointing stops and `write_error` says why."""
        if self.write_error is not None:
            return
        state = {**state, "format": FORMAT, "fit": k}
        state["metrics_offset"] = complete_jsonl_size(self.run_dir / "metrics.jsonl")
        try:
            save_torch_state(self.path(k), state)
        except OSError as exc:
            self.write_error = f"{self.path(k)}: {exc.strerror or exc}"

    def finish(self) -> None:
        """The run completed: the resume checkpoints are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
        parent = self.folder.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


_ACTIVE: contextvars.ContextVar[tuple[Journal | None, FitContext | None]] = contextvars.ContextVar(
    "mlatlas_active_run", default=(None, None)
)


def current() -> tuple[Journal | None, FitContext | None]:
    """The (journal, lab context) of the run in progress, or (None, None) outside a run."""
    return _ACTIVE.get()


@contextlib.contextmanager
def active(journal: Journal | None, lab: FitContext | None) -> Iterator[None]:
    """Make `journal` and `lab` the run in progress for every `fit` called in the block."""
    token = _ACTIVE.set((journal, lab))
    try:
        yield
    finally:
        _ACTIVE.reset(token)
