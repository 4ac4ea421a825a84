"""One set of CLIPs for the labs that read the same trained dual encoders.

The zero-shot, retrieval and compositional labs train the same CLIPs (same settings, same
data, same replicate seeds) and differ only in how they probe them. `shared_clips` trains
them once per run tree: the first lab trains the ensemble and writes it under
``<out>/multimodal/_shared/clip-<sha>.safetensors`` with ``clip-<sha>.json`` beside it (the
full key, a digest of the weights and the training record); a later lab whose key is
identical loads it instead of training again.

The key holds everything that decides the trained weights: the settings that shape the model
and its training, a sha256 of the training images, tokens and vocabulary, the replicates
(id and seed) trained together, a sha256 of their initial weights (which changes with the
architecture or its initialisation), a sha256 of the source of the modules that train them
(`TRAINING_CODE`: an edit to the loss, the optimizer, the schedule or the loop is a new key),
the device type, the torch version and `FORMAT`. The
members are trained as one batched ensemble, so the key names the whole roster: a member
trained next to other seeds need not be bit-for-bit the member trained alone.

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
from torch import nn

from mlatlas.core import distributed
from mlatlas.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.fileio import file_lock
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import FitResult
from mlatlas.paradigms.multimodal.captions import Captioned, Vocab
from mlatlas.paradigms.multimodal.train import build_clip, train_clip

TRAINING_CODE = (  # the modules whose source decides what a key trains
    "mlatlas.paradigms.multimodal.train",
    "mlatlas.paradigms.multimodal.clip",
    "mlatlas.paradigms.multimodal.captions",
    "mlatlas.foundations.optim.schedules",
    "mlatlas.core.train",
    "mlatlas.core.fitting",
    "mlatlas.core.ensemble",
)
FORMAT = 1  # raise when the training code changes what a key trains
MODEL_SETTINGS = ("dataset", "n_train", "steps", "batch", "lr", "dim", "text_layers", "image")
FOLDER = "_shared"
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
        raise CheckpointError(f"the shared CLIP entry does not fit: {missing}, {unexpected}")


def code_digest(modules: Sequence[str] = TRAINING_CODE) -> str:
    """sha256 over the source text of `modules`, in order."""
    return _sha(*(inspect.getsource(importlib.import_module(m)).encode() for m in modules))


def cache_key(
    settings: dict[str, Any],
    vocab: Vocab,
    train: Captioned,
    reps: Sequence[Replicate],
    init: Ensemble,
    device: torch.device,
) -> dict[str, Any]:
    """What decides the trained weights, as a JSON-able dict."""
    data = _sha(
        tensor_digest({"images": train.images, "tokens": train.tokens}).encode(),
        json.dumps(vocab.words).encode(),
    )
    return {
        "format": FORMAT,
        "model": "CLIP (multimodal.train.build_clip, train_clip)",
        "settings": {k: settings[k] for k in MODEL_SETTINGS},
        "data": data,
        "replicates": [[rep.id, rep.seed] for rep in reps],
        "init": tensor_digest(ensemble_weights(init)),
        "code": code_digest(),
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


def shared_clips(
    ctx: Any,
    cfg: dict[str, Any],
    reps: Sequence[Replicate],
    vocab: Vocab,
    train: Captioned,
    build: Callable[[], nn.Module] | None = None,
) -> tuple[Ensemble, FitResult]:
    """The labs' CLIP ensemble (member r = replicate r): loaded from the run tree's shared
    entry when its key is identical, else trained with `train_clip` and written there. The
    lab's record gets a note and the metric ``shared_models`` (key, trained or loaded)."""
    if build is None:
        build = lambda: build_clip(vocab, cfg["dim"], cfg["image"], layers=cfg["text_layers"])  # noqa: E731
    models = []
    for rep in reps:
        rep.seed_torch("init")
        models.append(build())
    ens = Ensemble(models)
    key = cache_key(cfg, vocab, train, reps, ens, ctx.device)
    sha = key_sha(key)
    folder = shared_folder(ctx.dir, ctx.spec.topic, ctx.spec.name)
    journal = getattr(ctx, "journal", None)
    replaying = journal is not None and journal.replaying
    usable = folder is not None and ctx.writes and not distributed.active()
    status, origin = "trained", f"{ctx.spec.name}/{ctx.dir.name}"

    def train_them() -> tuple[Ensemble, FitResult, float]:
        t0 = time.perf_counter()
        trained, res = train_clip(
            models, reps, train.images, train.tokens, cfg["steps"], cfg["batch"], cfg["lr"], ctx
        )
        return trained, res, time.perf_counter() - t0

    if not usable:
        ens, res, _ = train_them()
        status = "trained (not shared: the run folder is not <out>/<topic>/<lab>/<run>, or "
        status += "this is a data-parallel run)"
    else:
        stem = folder / f"clip-{sha}"
        with file_lock(folder / f".clip-{sha}.lock"):
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
    failed = [rep.id for rep, d in zip(reps, np.atleast_1d(res.diverged), strict=True) if d]
    ctx.note(
        "The zero-shot, retrieval and compositional labs share their CLIPs: one ensemble per "
        f"(settings, data, replicate seeds), key {sha}; this run's models were {status}"
        + (f" (trained by {origin})" if status == "loaded" else "")
        + (f"; diverged in training: seeds {failed}" if failed else "")
    )
    ctx.metric(
        "shared_models",
        {"key": sha, "status": status.split(" ")[0], "trained_by": origin, "entry": f"clip-{sha}"},
    )
    return ens, res
