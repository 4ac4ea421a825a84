"""Pretraining helpers the labs share: fixed data splits, per-member minibatches of augmented
views for batched ensembles (`mlatlas.core.ensemble`), the loss of each pretext on an
ensemble, and features for the linear probe.

An ensemble member is one (arm, replicate) pair. Members of the same replicate draw their
minibatches and augmentations from generators of the same streams (``rep.rng("batches")``,
``rep.generator("augment")``), so the arms of a paired comparison see the same images.

`shared_pretrain` trains a pretext once per run tree for the labs that read the same
pretrained encoders (`mlatlas.core.shared`): the pretext-probe and label-efficiency labs
share their SimCLR encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from mlatlas.core import shared
from mlatlas.core.data import Split, image_classification
from mlatlas.core.ensemble import Ensemble, make_ensemble
from mlatlas.core.seeding import Replicate, fixed_rng
from mlatlas.core.train import batches_for_steps, fit
from mlatlas.foundations.losses.functions import nt_xent
from mlatlas.foundations.optim.schedules import warmup_cosine
from mlatlas.paradigms.selfsupervised.augment import Augment
from mlatlas.paradigms.selfsupervised.encoders import ViTEncoder, WithHead
from mlatlas.paradigms.selfsupervised.mae import MAE
from mlatlas.paradigms.selfsupervised.rotation import rotation_batch
from mlatlas.paradigms.selfsupervised.simclr import simclr_model

PRETEXTS = ("simclr", "rotation", "mae", "supervised", "random")
TRAINING_CODE = (  # the modules whose source decides what a shared pretext trains
    "mlatlas.paradigms.selfsupervised.train",
    "mlatlas.paradigms.selfsupervised.augment",
    "mlatlas.paradigms.selfsupervised.encoders",
    "mlatlas.paradigms.selfsupervised.mae",
    "mlatlas.paradigms.selfsupervised.rotation",
    "mlatlas.paradigms.selfsupervised.simclr",
    "mlatlas.foundations.losses.functions",
    "mlatlas.foundations.optim.schedules",
    *shared.CORE_TRAINING_CODE,
)
SHARERS = {"simclr": "The pretext-probe and label-efficiency labs share their SimCLR encoders"}


def load(name: str, n_train: int | None, n_test: int | None) -> Split:
    """(N, 1, 28, 28) images; split and subsets fixed whatever --seed is (digits: 8x8 upsampled)."""
    return image_classification(
        name, fixed_rng("selfsupervised", name), n_train, n_test, flatten=False, size=28
    )


def build(kind: str, vit: dict, n_classes: int = 10) -> nn.Module:
    """The model a pretext trains: the same `ViTEncoder` under the pretext's head."""
    enc = ViTEncoder(**vit)
    if kind == "simclr":
        return simclr_model(enc)
    if kind == "rotation":
        return WithHead(enc, nn.Linear(enc.dim, 4))
    if kind == "mae":
        return MAE(enc)
    if kind in ("supervised", "random"):
        return WithHead(enc, nn.Linear(enc.dim, n_classes))
    raise ValueError(f"unknown pretext {kind!r}; known: {PRETEXTS}")


def member_images(
    n: int, batch: int, steps: int, reps: Sequence[Replicate]
) -> Iterator[torch.Tensor]:
    """`steps` index tensors (R, batch): member r's minibatch from its replicate's stream."""
    its = [batches_for_steps(n, batch, steps, r.rng("batches")) for r in reps]
    for _ in range(steps):
        yield torch.stack([next(it) for it in its])


def view_pairs(
    x: torch.Tensor,
    batch: int,
    steps: int,
    reps: Sequence[Replicate],
    augments: Sequence[Augment],
) -> Iterator[torch.Tensor]:
    """Per step (R, 2B, 1, H, W): two augmented views of each member's B images (view 1 in
    the first half). Member r uses augments[r] and its replicate's "augment" stream."""
    gens = [r.generator("augment") for r in reps]
    for idx in member_images(len(x), batch, steps, reps):
        out = []
        for i, g, aug in zip(idx, gens, augments, strict=True):
            xb = x[i]
            out.append(torch.cat([aug(xb, g), aug(xb, g)]))
        yield torch.stack(out)


def simclr_ensemble_loss(tau: float | Sequence[float]) -> Callable:
    """NT-Xent per member on view pairs (R, 2B, ...); tau: one value or one per member."""

    def loss(model: Ensemble, views: torch.Tensor) -> torch.Tensor:
        z = model(views, per_member=True)
        b = views.shape[1] // 2
        t = torch.as_tensor(tau, dtype=z.dtype).expand(z.shape[0])
        return vmap(nt_xent)(z[:, :b], z[:, b:], t)

    return loss


def pretext_batches(
    kind: str, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, reps, augment: Augment
) -> Iterator:
    """Minibatches for one pretext; every pretext sees 2 * batch images per member and step
    (two views; four rotations of batch/2 images; batch for MAE and supervised twice over)."""
    if kind == "simclr":
        yield from view_pairs(x, batch, steps, reps, [augment] * len(reps))
        return
    noise_gens = [r.generator("mask") for r in reps]
    b = batch // 2 if kind == "rotation" else 2 * batch
    for idx in member_images(len(x), b, steps, reps):
        if kind == "rotation":
            xr, _ = rotation_batch(x[idx].flatten(0, 1))  # (4 R b): rotation-major
            xr = xr.reshape(4, len(reps), b, *x.shape[1:]).transpose(0, 1).flatten(1, 2)
            yield xr, torch.arange(4).repeat_interleave(b)  # each member: (4b,) labels k
        elif kind == "mae":
            n_patches = (x.shape[-1] // 7) ** 2
            noise = torch.stack([torch.rand(b, n_patches, generator=g) for g in noise_gens])
            yield x[idx], noise
        else:
            yield x[idx], y[idx]


def pretext_loss(kind: str, tau: float = 0.5) -> Callable:
    """The per-member loss (R,) of a pretext on the batches of `pretext_batches`."""
    if kind == "simclr":
        return simclr_ensemble_loss(tau)

    def loss(model: Ensemble, batch) -> torch.Tensor:
        if kind == "mae":
            xb, noise = batch
            return model.call(lambda f, a, nz: f(a, nz), xb, noise, per_member=True)
        xb, target = batch
        logits = model(xb, per_member=True)  # (R, N, C)
        r, n = logits.shape[:2]
        tgt = target.expand(r, n) if target.dim() == 1 else target
        ce = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), reduction="none")
        return ce.reshape(r, n).mean(1)

    return loss


@torch.no_grad()
def features(ens: Ensemble, x: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """h = f(x) of every member on shared images x: (R, N, d)."""

    def run(a: torch.Tensor) -> torch.Tensor:
        return ens.call(lambda f, xx: f(xx, features=True), a)

    parts = [run(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return torch.cat(parts, dim=1)


def pretrain(
    ctx,
    kind: str,
    reps: Sequence[Replicate],
    data: Split,
    *,
    vit: dict,
    steps: int,
    batch: int,
    lr: float,
    tau: float = 0.5,
    augment: Augment | None = None,
    desc: str = "",
):
    """Train one pretext for every replicate as one batched ensemble (Adam, linear warmup over
    a tenth of the steps, then cosine decay); returns the ensemble and its `FitResult`.
    Member r starts from replicate r's "init" stream, so every pretext of one replicate
    starts from the same encoder weights. kind "random" trains nothing."""
    ens = make_ensemble(
        lambda _: build(kind, vit, data.n_classes), len(reps), lambda r: reps[r].seed_torch("init")
    )
    if kind == "random" or steps == 0:
        return ens, None
    opt = torch.optim.Adam(ens.parameters(), lr=lr)
    batches = pretext_batches(
        kind, data.x_train, data.y_train, batch, steps, reps, augment or Augment()
    )
    res = fit(
        ens,
        opt,
        pretext_loss(kind, tau),
        batches,
        steps,
        ctx=ctx,
        desc=desc or kind,
        schedule=warmup_cosine(lr, max(1, steps // 10), steps),
        log_every=max(1, steps // 10),
    )
    return ens, res


def shared_pretrain(
    ctx,
    kind: str,
    reps: Sequence[Replicate],
    data: Split,
    *,
    vit: dict,
    steps: int,
    batch: int,
    lr: float,
    tau: float = 0.5,
) -> tuple[Ensemble, Any]:
    """`pretrain` with the default augmentations, trained once per run tree for every lab
    that asks for the same (pretext, settings, data, replicates, code): loaded from
    ``<out>/selfsupervised/_shared/<kind>-<sha>`` when the key matches (`mlatlas.core.shared`).
    The record's note names the labs that share it."""
    init = make_ensemble(
        lambda _: build(kind, vit, data.n_classes), len(reps), lambda r: reps[r].seed_torch("init")
    )
    settings = {"kind": kind, "vit": vit, "steps": steps, "batch": batch, "lr": lr, "tau": tau}
    key = {
        "model": f"{kind} (selfsupervised.train.pretrain)",
        "settings": settings,
        "augment": asdict(Augment()),
        "data": shared.tensor_digest({"x": data.x_train, "y": data.y_train}),
        **shared.base_key(reps, init, ctx.device, shared.code_digest(TRAINING_CODE)),
    }
    return shared.shared_ensemble(
        ctx,
        name=kind,
        key=key,
        ens=init,
        train=lambda: pretrain(
            ctx, kind, reps, data, vit=vit, steps=steps, batch=batch, lr=lr, tau=tau
        ),
        sharers=SHARERS.get(kind, f"Labs of this topic share their {kind} encoders"),
    )
