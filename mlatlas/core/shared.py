"""Models several labs of one topic read: trained once per run tree, keyed by what decides them.

Two labs that train the same ensemble (same settings, data, replicate seeds and code) and
differ only in how they probe it should not train it twice, and their records should say
they share it. `shared_ensemble` trains it once per run tree: the first lab trains the
ensemble and writes it under ``<out>/<topic>/_shared/<name>-<sha>.safetensors`` with
``<name>-<sha>.json`` beside it (the full key, a digest of the weights and the training
record); a later lab whose key is identical loads it instead of training again.

A key holds everything that decides the trained weights. `base_key` gives the part every
ensemble needs: the replicates (id and seed) trained together, a sha256 of their initial
weights (which changes with the architecture or its initialisation), a sha256 of the source
of the modules that train them (an edit to the loss, the optimizer, the schedule or the loop
is a new key), the device type and the torch version; the caller adds its settings and a
digest of its training data. The members are trained as one batched ensemble, so the key
names the whole roster: a member trained next to other seeds need not be bit-for-bit the
member trained alone.

Both files are written atomically (the weights first, the JSON last, so a JSON that exists
describes complete weights) and read back with safetensors only; a weight digest that does
not match, a missing file or any other key means "train". A file lock on the entry makes a
second process wait for the first one's training and then load it. A resumed run whose
journal holds a fit goes through `fit` again (which replays its checkpoint), so a run resumes
to the same numbers whether or not the entry appeared meanwhile.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlatlas.core import distributed
from mlatlas.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.fileio import file_lock
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import FitResult

FOLDER = "_shared"
CORE_TRAINING_CODE = ("mlatlas.core.train", "mlatlas.core.fitting", "mlatlas.core.ensemble")
_FIT = "fit."  # prefix of the training record's tensors in the safetensors file


def _sha(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order."""
    parts = []
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        parts += [k.encode(), str(t.dtype).encode(), str(tuple(t.shape)).encode()]
        parts.append(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return _sha(*parts)


def ensemble_weights(ens: Ensemble) -> dict[str, torch.Tensor]:
    """The stacked parameters and buffers of `ens` (its `base` is a weightless template)."""
    return {k: v.detach() for k, v in ens.state_dict().items() if not k.startswith("base.")}


def load_weights(ens: Ensemble, tensors: dict[str, torch.Tensor]) -> None:
    weights = {k: v for k, v in tensors.items() if not k.startswith(_FIT)}
    missing, unexpected = ens.load_state_dict(weights, strict=False)
    if unexpected or any(not k.startswith("base.") for k in missing):
        raise CheckpointError(f"the shared entry does not fit: {missing}, {unexpected}")


def code_digest(modules: Sequence[str]) -> str:
    """sha256 over the source text of `modules`, in order."""
    return _sha(*(inspect.getsource(importlib.import_module(m)).encode() for m in modules))


def base_key(
    reps: Sequence[Replicate], init: Ensemble, device: torch.device, code: str
) -> dict[str, Any]:
    """The part of a key that every shared ensemble needs (`code`: a `code_digest`)."""
    return {
        "replicates": [[rep.id, rep.seed] for rep in reps],
        "init": tensor_digest(ensemble_weights(init)),
        "code": code,
        "device": torch.device(device).type,
        "torch": torch.__version__.split("+")[0],
    }


def key_sha(key: dict[str, Any]) -> str:
    return _sha(json.dumps(key, sort_keys=True).encode())[:16]


def shared_folder(run_dir: Path, topic: str, lab: str) -> Path | None:
    """``<out>/<topic>/_shared`` for a run folder ``<out>/<topic>/<lab>/<run>``; None when
    the folder is not laid out so (then nothing is shared)."""
    run_dir = Path(run_dir)
    if run_dir.parent.name != lab or run_dir.parent.parent.name != topic:
        return None
    return run_dir.parent.parent / FOLDER


def _fit_tensors(res: FitResult) -> dict[str, torch.Tensor]:
    return {
        _FIT + "losses": torch.as_tensor(np.asarray(res.losses)),
        _FIT + "diverged": torch.as_tensor(np.asarray(res.diverged, dtype=bool)),
        _FIT + "diverged_at": torch.as_tensor(np.asarray(res.diverged_at, dtype=np.int64)),
        _FIT + "last_finite_loss": torch.as_tensor(np.asarray(res.last_finite_loss)),
    }


def _fit_result(tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> FitResult:
    t = {k[len(_FIT) :]: v.numpy() for k, v in tensors.items() if k.startswith(_FIT)}
    return FitResult(
        t["losses"],
        t["diverged"].astype(bool),
        int(record["steps"]),
        bool(record["stopped_early"]),
        t["diverged_at"],
        t["last_finite_loss"],
        [],
    )


def load_entry(stem: Path, key: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The entry's (tensors, record) if its JSON holds exactly `key` and its weights match
    their digest; None otherwise (absent, another key, damaged)."""
    if not (stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file()):
        return None
    try:
        tensors, record = load_checkpoint(stem)
    except CheckpointError:
        return None
    weights = {k: v for k, v in tensors.items() if not k.startswith(_FIT)}
    if record.get("key") != key or record.get("weights_sha256") != tensor_digest(weights):
        return None
    return tensors, record


def shared_ensemble(
    ctx: Any,
    *,
    name: str,
    key: dict[str, Any],
    ens: Ensemble,
    train: Callable[[], tuple[Ensemble, FitResult]],
    sharers: str,
) -> tuple[Ensemble, FitResult]:
    """The ensemble under `key`: loaded into `ens` (the members at their initial weights)
    from the run tree's entry ``<name>-<sha>`` when one holds exactly `key`, else trained by
    `train()` and written there. `sharers` starts the record's note ("The A and B labs share
    their X"); the metric ``shared_models`` gets the key, the status and who trained it."""
    key = json.loads(json.dumps(key))  # as the entry's JSON reads back (tuples become lists)
    sha = key_sha(key)
    folder = shared_folder(ctx.dir, ctx.spec.topic, ctx.spec.name)
    journal = getattr(ctx, "journal", None)
    replaying = journal is not None and journal.replaying
    usable = folder is not None and ctx.writes and not distributed.active()
    status, origin = "trained", f"{ctx.spec.name}/{ctx.dir.name}"

    def train_them() -> tuple[Ensemble, FitResult, float]:
        t0 = time.perf_counter()
        trained, res = train()
        return trained, res, time.perf_counter() - t0

    if not usable:
        ens, res, _ = train_them()
        status = "trained (not shared: the run folder is not <out>/<topic>/<lab>/<run>, or "
        status += "this is a data-parallel run)"
    else:
        stem = folder / f"{name}-{sha}"
        with file_lock(folder / f".{name}-{sha}.lock"):
            entry = None if replaying else load_entry(stem, key)
            if entry is not None:
                tensors, record = entry
                load_weights(ens, tensors)
                res = _fit_result(tensors, record)
                status, origin = "loaded", record["trained_by"]
            else:
                ens, res, wall = train_them()
                weights = ensemble_weights(ens)
                record = {
                    "key": key,
                    "sha": sha,
                    "weights_sha256": tensor_digest(weights),
                    "trained_by": origin,
                    "steps": int(res.steps),
                    "stopped_early": bool(res.stopped_early),
                    "final_loss": [float(v) for v in np.atleast_1d(res.final_loss)],
                    "diverged": [bool(v) for v in np.atleast_1d(res.diverged)],
                    "train_wall_s": round(wall, 3),
                }
                save_checkpoint(stem, {**weights, **_fit_tensors(res)}, record)
    failed = [
        rep_id
        for rep_id, d in zip(
            [r for r, _ in key["replicates"]], np.atleast_1d(res.diverged), strict=True
        )
        if d
    ]
    ctx.note(
        f"{sharers}: one ensemble per (settings, data, replicate seeds), key {sha}; this run's "
        f"models were {status}"
        + (f" (trained by {origin})" if status == "loaded" else "")
        + (f"; diverged in training: seeds {failed}" if failed else "")
    )
    ctx.metric(
        "shared_models",
        {
            "key": sha,
            "status": status.split(" ")[0],
            "trained_by": origin,
            "entry": f"{name}-{sha}",
        },
    )
    return ens, res
