"""Time per training step of the same MLP: mlatlas's NumPy autograd vs PyTorch (CPU).

One run times float64 and float32. Each side runs forward, cross-entropy, backward and an SGD
update on the same batch from the same initial weights (the first losses are checked to agree,
so both time the same computation). The four step functions (ours and torch, in each dtype)
run once per round, in a shuffled order, so that machine noise hits all of them alike; the
ratio is median(ours) / median(torch), printed next to the target, with the interquartile
range of the per-round ratio.

The judged shape is the MLP 64-256-256-10 at batch 128; a larger one (784-512-512-10, batch
512) is printed as information. Its time is mostly matrix products, so it compares NumPy's
BLAS (OpenBLAS) with torch's (MKL) more than it compares the two autograd engines.

Threads, like with like: NumPy's BLAS is limited to torch's thread count (threadpoolctl).
OpenBLAS's worker threads busy-wait for 2^28 cycles (about 0.1 s) after each product
(OPENBLAS_THREAD_TIMEOUT, default 28); in a process that alternates the two engines that
spinning thread takes a core from every torch step, so this script sets the timeout to 2^4
cycles unless the variable is already set. Our workers then sleep between products and ours
pays their wake-ups; torch's OpenMP threads keep their default spinning (which in turn costs
ours). Minor page faults per step are printed because glibc returns freed heap memory to the
OS (heap trimming), and a side that frees more memory per step pays page faults to get it
back in the next.

With `--alone` each side is instead timed in a block of steps of its own, one dtype's pair
built at a time, as in a process that trains with one engine. How often trimming strikes
depends on the heap's layout: a script that built one float64 pair and timed our step first
saw 500-800 page faults per step, until a step stopped allocating and freeing a weight-sized
array per gradient copy and per SGD update (now 0 there).

    python benchmarks/autograd_vs_torch.py [--steps 300] [--threads N] [--target 1.2] [--alone]
"""

from __future__ import annotations

import os

# before NumPy loads OpenBLAS, which reads the variable once (see the docstring)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from mlatlas.core.train import make_mlp
from mlatlas.foundations.backprop import MLP, SGD, Tensor, cross_entropy

DTYPES = ("float64", "float32")
SIDES = ("ours", "torch")


def _pair(sizes: list[int], batch: int, dtype: str) -> tuple[Callable[[], float], ...]:
    """Step functions for our MLP and torch's, loaded with the same weights and batch; each
    returns its loss."""
    np_dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0])).astype(np_dtype)
    y = rng.integers(0, sizes[-1], batch)
    ours = MLP(sizes, rng)
    for p in ours.parameters():
        p.data = p.data.astype(np_dtype)
    ref = make_mlp(sizes).to(getattr(torch, dtype))
    with torch.no_grad():
        for layer, lin in zip(ours.layers, ref[::2], strict=True):
            lin.weight.copy_(torch.from_numpy(layer.weight.data))
            lin.bias.copy_(torch.from_numpy(layer.bias.data))
    opt, opt_ref = SGD(ours.parameters(), 0.01), torch.optim.SGD(ref.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_ours() -> float:
        opt.zero_grad()
        loss = cross_entropy(ours(Tensor(x)), y)
        loss.backward()
        opt.step()
        return loss.item()

    def step_torch() -> float:
        opt_ref.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(xt), yt)
        loss.backward()
        opt_ref.step()
        return loss.item()

    return step_ours, step_torch


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _checked_pair(sizes: list[int], batch: int, dtype: str) -> tuple[Callable[[], float], ...]:
    step_ours, step_torch = _pair(sizes, batch, dtype)
    first_ours, first_torch = step_ours(), step_torch()
    if not np.isclose(first_ours, first_torch, rtol=1e-4):
        raise RuntimeError(f"{dtype}: the two first losses differ: {first_ours}, {first_torch}")
    return step_ours, step_torch


def _timed(
    key: tuple[str, str],
    fn: Callable[[], float],
    times: dict[tuple[str, str], list[float]],
    faults: dict[tuple[str, str], int],
) -> None:
    """Run one step, adding its wall time and minor page faults to key's records."""
    f0, t0 = _faults(), time.perf_counter()
    fn()
    times[key].append(time.perf_counter() - t0)
    faults[key] += _faults() - f0


def compare(
    sizes: list[int], batch: int, steps: int, alone: bool = False
) -> dict[str, dict[str, float | str]]:
    """Per dtype: median ms/step of each side, their ratio, the interquartile range of the
    per-round ratio and the mean minor page faults per step of each side.

    alone: build one dtype's pair at a time and time each side in a block of `steps` steps of
    its own after 10 of warm-up, as a process that trains with one engine does."""
    keys = [(dtype, side) for dtype in DTYPES for side in SIDES]
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    faults = dict.fromkeys(keys, 0)
    if alone:
        for dtype in DTYPES:
            for side, fn in zip(SIDES, _checked_pair(sizes, batch, dtype), strict=True):
                for _ in range(10):
                    fn()
                for _ in range(steps):
                    _timed((dtype, side), fn, times, faults)
    else:
        fns = {}
        for dtype in DTYPES:
            fns[dtype, "ours"], fns[dtype, "torch"] = _checked_pair(sizes, batch, dtype)
        for _ in range(10):  # warm-up
            for fn in fns.values():
                fn()
        order_rng = np.random.default_rng(0)
        for _ in range(steps):
            for i in order_rng.permutation(len(keys)):
                _timed(keys[i], fns[keys[i]], times, faults)
    out = {}
    for dtype in DTYPES:
        ours, ref = np.array(times[dtype, "ours"]), np.array(times[dtype, "torch"])
        q25, q75 = np.percentile(ours / ref, [25, 75])
        out[dtype] = {
            "ours_ms": float(np.median(ours)) * 1e3,
            "torch_ms": float(np.median(ref)) * 1e3,
            "ratio": float(np.median(ours) / np.median(ref)),
            "iqr": f"{q25:.2f}-{q75:.2f}",
            "faults_ours": faults[dtype, "ours"] / steps,
            "faults_torch": faults[dtype, "torch"] / steps,
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256,256,10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--info-sizes", default="784,512,512,10")
    ap.add_argument("--info-batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--target", type=float, default=1.2)
    ap.add_argument("--alone", action="store_true", help="time each step function in a block")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = [(True, args.sizes, args.batch)]
    if args.info_batch > 0:
        shapes.append((False, args.info_sizes, args.info_batch))
    with threadpool_limits(limits=args.threads, user_api="blas"):
        numpy_blas = [
            f"{i['internal_api']} {i['num_threads']} threads"
            for i in threadpool_info()
            if i["user_api"] == "blas" and "numpy" in i["filepath"]
        ]
        print(
            f"threads: torch {torch.get_num_threads()} (intra-op), NumPy BLAS "
            f"{', '.join(numpy_blas) or 'unknown'}; OPENBLAS_THREAD_TIMEOUT="
            f"{os.environ['OPENBLAS_THREAD_TIMEOUT']}; {args.steps} rounds"
            f"{' (each side alone)' if args.alone else ' (interleaved)'}; SGD lr 0.01, "
            f"cross-entropy"
        )
        for judged, sizes_arg, batch in shapes:
            sizes = [int(s) for s in sizes_arg.split(",")]
            res = compare(sizes, batch, args.steps, args.alone)
            role = f"target ours/torch <= {args.target:.2f}x" if judged else "information only"
            print(f"MLP {'-'.join(map(str, sizes))}, batch {batch} ({role})")
            for dtype, r in res.items():
                verdict = ""
                if judged:
                    verdict = " PASS" if r["ratio"] <= args.target else " MISS"
                print(
                    f"  {dtype}: ours {r['ours_ms']:7.3f} ms, torch {r['torch_ms']:7.3f} ms "
                    f"(medians); target {args.target:.2f}x, ratio ours/torch {r['ratio']:.2f}x "
                    f"(per-round IQR {r['iqr']}; page faults/step {r['faults_ours']:.0f} vs "
                    f"{r['faults_torch']:.0f}){verdict}"
                )


if __name__ == "__main__":
    main()
