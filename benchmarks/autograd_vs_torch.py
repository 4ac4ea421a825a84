"""Time per training step of the same MLP: mlatlas's NumPy autograd vs PyTorch (CPU).

Both run forward, cross-entropy, backward and an SGD update on the same batch, in the same
dtype, interleaved round by round so that machine noise hits both alike. Prints the ratio
(ours / torch) of the median step times; absolute times are shown only for context.

    python benchmarks/autograd_vs_torch.py [--sizes 64,256,256,10] [--batch 128] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlatlas.core.train import make_mlp
from mlatlas.foundations.backprop import MLP, SGD, Tensor, cross_entropy


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,256,256,10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    np_dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, sizes[0])).astype(np_dtype)
    y = rng.integers(0, sizes[-1], args.batch)

    ours = MLP(sizes, rng)
    for p in ours.parameters():
        p.data = p.data.astype(np_dtype)
    ref = make_mlp(sizes).to(getattr(torch, args.dtype))
    opt, opt_ref = SGD(ours.parameters(), 0.01), torch.optim.SGD(ref.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step_ours() -> None:
        opt.zero_grad()
        cross_entropy(ours(Tensor(x)), y).backward()
        opt.step()

    def step_torch() -> None:
        opt_ref.zero_grad()
        torch.nn.functional.cross_entropy(ref(xt), yt).backward()
        opt_ref.step()

    for _ in range(10):  # warm-up
        step_ours()
        step_torch()
    t_ours, t_torch = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step_ours()
        t1 = time.perf_counter()
        step_torch()
        t2 = time.perf_counter()
        t_ours.append(t1 - t0)
        t_torch.append(t2 - t1)
    mo, mt = float(np.median(t_ours)), float(np.median(t_torch))
    params = sum(p.size for p in ours.parameters())
    print(
        f"MLP {sizes} ({params} parameters), batch {args.batch}, {args.dtype}, "
        f"{args.threads} threads, {args.steps} interleaved steps"
    )
    print(f"  mlatlas autograd: {mo * 1e3:8.3f} ms/step (median)")
    print(f"  torch:            {mt * 1e3:8.3f} ms/step (median)")
    print(f"  ratio ours/torch: {mo / mt:.2f}x")


if __name__ == "__main__":
    main()
