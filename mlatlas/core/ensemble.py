"""Replicates trained as one batched ensemble.

R copies of a model with independent initialisations are stacked on a leading axis and run
with `torch.func.vmap(functional_call)`: one batched matmul instead of R small ones, so five
seeds cost far less than five runs on a CPU. Because the copies share no parameter, the
gradient of the *sum* of their losses with respect to copy r is copy r's own gradient, and any
element-wise optimizer (SGD, momentum, Adam, AdamW) applied to the stacked tensors performs
exactly R independent runs (``tests/test_train.py`` checks this against separate training).
Not element-wise, and so not per-copy here: a global gradient-norm clip, and BatchNorm's running
statistics (its buffers are updated per call, which vmap does not allow).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Ensemble(nn.Module):
    """R models with the same architecture, stacked: ``forward(x)`` returns shape (R, ...).

    ``x`` of shape (B, ...) is shared by every member; ``x`` of shape (R, B, ...) with
    ``per_member=True`` gives each member its own batch.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        params, buffers = stack_module_state(list(models))
        self.size = len(models)
        self._names = list(params)
        # parameter names hold dots, which nn.Module attribute names may not
        self.stacked = nn.ParameterList([nn.Parameter(params[k]) for k in self._names])
        self._buffer_names = list(buffers)
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"_buf{i}", buffers[k])
        # Tied weights (a GPT's output head sharing the token embedding) appear once in
        # `params`; the template keeps the tie, so functional_call feeds every use of the
        # matrix from the one stacked tensor and its gradient sums over the uses.
        first: dict[int, str] = {}
        self._aliases: dict[str, str] = {}
        for name, p in models[0].named_parameters(remove_duplicate=False):
            first.setdefault(id(p), name)
            if first[id(p)] != name:
                self._aliases[name] = first[id(p)]
        self.base = self._tie(copy.deepcopy(models[0]).to("meta"))

    def _tie(self, m: nn.Module) -> nn.Module:
        """Tie `m`'s aliased parameters again: `.to` and `.to_empty` convert each use apart."""
        for alias, name in self._aliases.items():
            owner, _, attr = alias.rpartition(".")
            m.get_submodule(owner).register_parameter(attr, m.get_parameter(name))
        return m

    @property
    def names(self) -> list[str]:
        """The members' parameter names, in the order of `stacked` (tied aliases left out)."""
        return list(self._names)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(zip(self._names, self.stacked, strict=True))
        buffers = {k: getattr(self, f"_buf{i}") for i, k in enumerate(self._buffer_names)}
        return params, buffers

    def call(
        self,
        fn: Callable[..., torch.Tensor],
        *args: torch.Tensor,
        per_member: bool = False,
        loop: bool = False,
    ):
        """vmap ``fn(module_call, *args)`` over members, where ``module_call(*a)`` runs one
        member; for forward passes that need more than ``base(x)``.

        ``loop=True`` runs the members one after another on slices of the stacked weights
        and stacks the outputs: the same values and gradients, and faster for convolutions
        on a CPU, where vmap turns R convolutions into one grouped convolution (several times
        slower for a small U-Net than R plain ones)."""
        params, buffers = self._state()

        def one(p, b, *a):
            return fn(lambda *xs, **kw: functional_call(self.base, (p, b), xs, kw), *a)

        if loop:
            outs = []
            for r in range(self.size):
                a = [x[r] if per_member else x for x in args]
                p = {k: v[r] for k, v in params.items()}
                outs.append(one(p, {k: v[r] for k, v in buffers.items()}, *a))
            if isinstance(outs[0], tuple):
                return tuple(torch.stack(z) for z in zip(*outs, strict=True))
            return torch.stack(outs)
        in_dims = (0, 0, *([0 if per_member else None] * len(args)))
        return vmap(one, in_dims=in_dims, randomness="different")(params, buffers, *args)

    def forward(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return self.call(lambda f, xx: f(xx), x, per_member=per_member)

    def member(self, r: int) -> nn.Module:
        """Member `r` as a standalone module (a copy of its current weights)."""
        params, buffers = self._state()
        m = self._tie(copy.deepcopy(self.base).to_empty(device=self.stacked[0].device))
        state = {k: v[r].detach().clone() for k, v in {**params, **buffers}.items()}
        state.update({alias: state[name] for alias, name in self._aliases.items()})
        m.load_state_dict(state)
        return m


def make_ensemble(
    build: Callable[[int], nn.Module], size: int, seed_fn: Callable[[int], object]
) -> Ensemble:
    """An `Ensemble` of `size` models, member r built by ``build(r)`` right after
    ``seed_fn(r)`` (e.g. ``lambda r: reps[r].seed_torch("init")``), so each member has its own
    initialisation and two arms seeded alike start alike."""
    models = []
    for r in range(size):
        seed_fn(r)
        models.append(build(r))
    return Ensemble(models)


Batch = TypeVar("Batch", torch.Tensor, tuple[torch.Tensor, ...])
Source = TypeVar("Source")


def member_batches(
    sources: Sequence[Source], draw: Callable[[Source], Batch] = next
) -> Iterator[Batch]:
    """Batches for an R-member ensemble (use with ``per_member=True``): member r's batch is
    ``draw(sources[r])``, a tensor or a tuple of tensors, stacked on a new leading axis.

    ``sources`` are per-member iterators (``draw=next``, the default), e.g. each member's
    `batches_for_steps` indices from its replicate's ``rng("batches")``, and the batches end
    when they do; or per-member torch generators with a `draw(g)` that samples one batch, and
    the batches are endless. Members of one replicate given the same stream see the same data
    (common random numbers for a paired comparison)."""
    while True:
        parts = []
        for r, source in enumerate(sources):
            try:
                parts.append(draw(source))
            except StopIteration:
                if r:
                    raise ValueError(f"member {r}'s batches ended before member 0's") from None
                return
        if isinstance(parts[0], torch.Tensor):
            yield torch.stack(parts)
        else:
            yield tuple(torch.stack(p) for p in zip(*parts, strict=True))


def member_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member: logits (R, B, C), labels (R, B) -> (R,)."""
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    return ce.view(y.shape).mean(1)


def ensemble_cross_entropy(
    x: torch.Tensor, y: torch.Tensor
) -> Callable[[Ensemble, torch.Tensor], torch.Tensor]:
    """loss_fn for `fit`: each member's mean cross-entropy on its own minibatch of (x, y),
    for index batches of shape (R, B) (`member_batches`); returns shape (R,)."""

    def loss_fn(ens: Ensemble, idx: torch.Tensor) -> torch.Tensor:
        return member_cross_entropy(ens(x[idx], per_member=True), y[idx])

    return loss_fn


@torch.no_grad()
def member_outputs(ens: Ensemble, x: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """Every member's outputs on the shared inputs `x`, in chunks: shape (R, N, ...)."""
    return torch.cat([ens(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=1)


@torch.no_grad()
def member_accuracy(ens: Ensemble, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Accuracy of each member on (x, y), shape (R,); NaN for a member whose outputs are not
    all finite (a diverged run has no accuracy of its own: its claim decides what it counts as)."""
    z = member_outputs(ens, x)
    acc = (z.argmax(-1) == y).double().mean(1).cpu().numpy()
    finite = torch.isfinite(z).flatten(1).all(1).cpu().numpy()
    return np.where(finite, acc, np.nan)


def member_grad_norms(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Per-member gradient norms (R,) of stacked parameters whose leading axis is the member."""
    sq = sum(p.grad.detach().flatten(1).pow(2).sum(1) for p in params if p.grad is not None)
    return torch.as_tensor(sq).sqrt()


def clip_members_(params: Iterable[torch.Tensor], max_norm: float | torch.Tensor) -> torch.Tensor:
    """Scale each member's gradient so its norm is at most `max_norm` (a number, or one per
    member; ``inf`` leaves a member unclipped); returns the norms before clipping.

    The per-member form of ``nn.utils.clip_grad_norm_`` (same rule, coef = max / (norm + 1e-6),
    capped at 1): a clip over the stacked tensors would couple the members' runs.
    """
    params = [p for p in params if p.grad is not None]
    norms = member_grad_norms(params)
    coef = (
        torch.as_tensor(max_norm, dtype=norms.dtype, device=norms.device) / (norms + 1e-6)
    ).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))).to(p.grad.dtype))
    return norms
