"""Data-parallel training across processes: the same lab on W processes, each on 1/W of a batch.

Launched by ``torchrun --nproc_per_node W -m mlatlas run TOPIC LAB`` (or ``mlatlas run TOPIC
LAB --nproc W``, which starts that command), every process ("rank" r = 0 .. W-1) runs the
whole lab with the same seeds, so every rank builds the same model and draws the same global
batch of B items from its seeded generator. `mlatlas.core.train.fit` then keeps rank r's
contiguous shard of each batch tensor along dim 0 (items r·B/W .. (r+1)·B/W - 1), and after
the backward pass replaces every gradient by its mean over the ranks. With a loss that is the
mean over equal shards, L = (1/W)·Σ_r L_r, so by linearity of the gradient

    (1/W) · Σ_r ∇L_r = ∇L,

the gradient of the global batch (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §2;
Li et al. 2020, "PyTorch Distributed"). Every rank applies the same averaged gradient to the
same weights, so the weights stay identical on every rank without a broadcast, and the
recorded loss is the mean of the shard losses: the global one. A loss that is a mean over
positions whose number differs between shards (a masked mean) is not such an average; its
data-parallel gradient weights the shards equally instead of the positions.

What is and is not split:

* a `fit` of a single model is split as above (the batch must divide by W);
* a batched `Ensemble` fit, and everything outside `fit` (evaluations, hand-written loops,
  data preparation), runs replicated: every rank does the whole work. That is correct (the
  numbers are the same on every rank) but gives no speed-up;
* random draws inside the loss (dropout masks, noise) come, under data parallelism, from a
  generator seeded per (fit, step, rank), so the shards draw independent masks; the global
  generators are left as they were before the step, so every rank's state stays the same.
  A loss that draws from a generator it holds itself draws the same numbers on every rank;
* BatchNorm normalizes each shard by the shard's own statistics (as DistributedDataParallel
  does without SyncBatchNorm), so a model with BatchNorm trains close to, not exactly as, one
  process; its running statistics are averaged over the ranks, keeping the ranks identical;
* only rank 0 writes the run folder and prints; the other ranks write no file there (a lab
  that saves a checkpoint itself gets, on them, a scratch folder removed when the lab ends);
* a run is resumed in one process (`mlatlas.core.runner.resume_run` refuses under data
  parallelism): replaying a lab whose fits wait on each other across processes is not tested.

Backends: gloo on the CPU, NCCL on CUDA (each rank uses the GPU of its ``LOCAL_RANK``).
Gradients are averaged with one all-reduce of a flat buffer per step (the loss rides in the
same buffer), not `torch.nn.parallel.DistributedDataParallel`: the model stays the lab's own
module (its methods and attributes reach the loss function unchanged), and on gloo with two
one-thread CPU processes it measured no slower than DDP's bucketed, overlapped all-reduce
(topic 7's 4-layer, 128-wide GPT at batch 32 x 128: 168 vs 172 ms per step).

Known on these machines: a gloo worker can abort at interpreter exit after its work is done;
`shutdown` ends each worker with a barrier, ``destroy_process_group``, flushed output and
``os._exit``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mlatlas.core.lab import ConfigError
from mlatlas.core.seeding import derive_seed

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether this process was started by torchrun for more than one process."""
    return all(k in os.environ for k in ENV) and int(os.environ["WORLD_SIZE"]) > 1


def init(device: str | torch.device = "cpu", timeout_s: float = 1800.0) -> str:
    """Join the process group torchrun set up (a no-op if not launched or already joined);
    returns the backend: ``nccl`` for a CUDA device, else ``gloo``."""
    if not launched():
        return ""
    if dist.is_initialized():
        return str(dist.get_backend())
    use_cuda = torch.device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return backend


def initialized() -> bool:
    """Whether this process has joined a process group."""
    return dist.is_available() and dist.is_initialized()


def active() -> bool:
    """Whether data parallelism is on: a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def backend() -> str:
    return str(dist.get_backend()) if active() else ""


def describe() -> str:
    """e.g. "2 processes (gloo)"; "" when not data-parallel."""
    return f"{world_size()} processes ({backend()})" if active() else ""


def _device() -> torch.device:
    """Where collectives put their tensors: NCCL needs the rank's GPU."""
    if backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks, in place, with one all-reduce of one
    flat buffer per dtype (one message per step instead of one per tensor)."""
    if not active() or not tensors:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    dev, w = _device(), world_size()
    for group in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        buf = flat.to(dev) if flat.device != dev else flat
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        buf.div_(w)
        flat = buf.to(flat.device) if buf is not flat else flat
        offset = 0
        for t in group:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def shard(batch: Any, r: int | None = None, w: int | None = None) -> Any:
    """Rank r's contiguous chunk r of w of every tensor (and array) in `batch` along dim 0,
    keeping tuples, lists and dicts as they are; other values pass unchanged. Every tensor of
    the batch must have the same first dimension B, divisible by w."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    sizes = set()
    _leading_sizes(batch, sizes)
    if len(sizes) > 1:
        raise ConfigError(
            f"data-parallel fit splits each batch along dim 0, but its tensors have first "
            f"dimensions {sorted(sizes)}; give fit batches whose tensors are all batch-sized"
        )
    if sizes and (b := sizes.pop()) % w:
        raise ConfigError(
            f"a batch of {b} items does not split into {w} equal shards for data-parallel "
            f"training on {w} processes; use a batch size divisible by {w} (--set batch=...) "
            "or another number of processes"
        )
    return _take(batch, r, w)


def _leading_sizes(x: Any, out: set[int]) -> None:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim:
            out.add(int(x.shape[0]))
    elif isinstance(x, (tuple, list)):
        for v in x:
            _leading_sizes(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _leading_sizes(v, out)


def _take(x: Any, r: int, w: int) -> Any:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if not x.ndim:
            return x
        n = x.shape[0] // w
        return x[r * n : (r + 1) * n]
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple
        return type(x)(*(_take(v, r, w) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(_take(v, r, w) for v in x)
    if isinstance(x, dict):
        return {k: _take(v, r, w) for k, v in x.items()}
    return x


@contextmanager
def rank_stream(*keys: object) -> Iterator[None]:
    """Run the block with the global generators seeded from `keys` and this rank, then put
    them back as they were: random draws inside a data-parallel step (dropout masks, noise)
    differ between the shards, and every rank's generators stay the same outside the step."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(*keys, "rank", rank()) % 2**63)
        yield


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s value of a picklable object, on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_device() if backend() == "nccl" else None)
    return box[0]


def agree(flag: bool) -> bool:
    """Rank 0's value of `flag` on every rank (for decisions made from wall-clock time, which
    differ between ranks and must not let one rank stop while the others train on)."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.broadcast(t, src=0)
    return bool(t.item())


def any_rank(flag: bool) -> bool:
    """Whether `flag` holds on some rank."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown(code: int = 0) -> None:
    """End a data-parallel process cleanly and exit with `code`: barrier, destroy the process
    group, flush the output, ``os._exit`` (gloo can hang or abort at interpreter exit)."""
    if code == 0 and dist.is_available() and dist.is_initialized():
        # a failed rank skips the barrier: the others may wait in a collective it will never
        # join, and torchrun stops them once this process has exited with an error
        dist.barrier()
        dist.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def silence() -> None:
    """Send this process's Python-level output to the null device (ranks other than 0)."""
    null = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    sys.stdout = null
    sys.stderr = null
