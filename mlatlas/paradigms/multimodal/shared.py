"""One set of CLIPs for the labs that read the same trained dual encoders.

The zero-shot, retrieval and compositional labs train the same CLIPs (same settings, same
data, same replicate seeds) and differ only in how they probe them. `shared_clips` trains
them once per run tree through `mlatlas.core.shared`: the first lab trains the ensemble and
writes it under ``<out>/multimodal/_shared/clip-<sha>.safetensors`` with ``clip-<sha>.json``
beside it; a later lab whose key is identical loads it instead of training again.

The key holds the settings that shape the model and its training, a sha256 of the training
images, tokens and vocabulary, and `mlatlas.core.shared.base_key` (replicates, initial
weights, a digest of the source of `TRAINING_CODE`, device, torch version), with `FORMAT`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from mlatlas.core import shared as core_shared
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import Replicate
from mlatlas.core.shared import (  # noqa: F401  (the names this topic's tests read)
    FOLDER,
    _sha,
    key_sha,
    load_entry,
    shared_folder,
    tensor_digest,
)
from mlatlas.core.train import FitResult
from mlatlas.paradigms.multimodal.captions import Captioned, Vocab
from mlatlas.paradigms.multimodal.train import build_clip, train_clip

TRAINING_CODE = (  # the modules whose source decides what a key trains
    "mlatlas.paradigms.multimodal.train",
    "mlatlas.paradigms.multimodal.clip",
    "mlatlas.paradigms.multimodal.captions",
    "mlatlas.foundations.optim.schedules",
    *core_shared.CORE_TRAINING_CODE,
)
FORMAT = 1  # raise when the training code changes what a key trains
MODEL_SETTINGS = ("dataset", "n_train", "steps", "batch", "lr", "dim", "text_layers", "image")


def code_digest(modules: Sequence[str] = TRAINING_CODE) -> str:
    """sha256 over the source text of `modules`, in order."""
    return core_shared.code_digest(modules)


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
        **core_shared.base_key(reps, init, device, code_digest()),
    }


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
    return core_shared.shared_ensemble(
        ctx,
        name="clip",
        key=key,
        ens=ens,
        train=lambda: train_clip(
            models, reps, train.images, train.tokens, cfg["steps"], cfg["batch"], cfg["lr"], ctx
        ),
        sharers="The zero-shot, retrieval and compositional labs share their CLIPs",
    )
