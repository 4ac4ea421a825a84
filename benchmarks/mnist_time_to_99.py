"""LeNet-5 on MNIST: wall time and steps until the test accuracy first reaches 99%,
with the recipe of the cnn lab (Adam, cosine decay over the planned steps), checked every
`--every` steps. Prints the time and the share of it spent evaluating.

    python benchmarks/mnist_time_to_99.py [--steps 4500] [--every 250]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlatlas.architectures.cnn.data import images
from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.core.train import accuracy, fit_classifier
from mlatlas.foundations.optim.schedules import cosine


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--ours", action="store_true", help="use the im2col convolution")
    args = ap.parse_args(argv)
    data = images("mnist", np.random.default_rng(0))
    torch.manual_seed(0)
    model = LeNet5(ours=args.ours)
    state = {"eval": 0.0, "hit": None}
    t0 = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        if step % args.every == 0 and state["hit"] is None:
            e0 = time.perf_counter()
            model.eval()
            acc = accuracy(model, data.x_test, data.y_test)
            model.train()
            state["eval"] += time.perf_counter() - e0
            if acc >= args.target:
                state["hit"] = (step, time.perf_counter() - t0, acc)

    fit_classifier(
        model,
        data.x_train,
        data.y_train,
        args.steps,
        128,
        np.random.default_rng(0),
        2e-3,
        on_step,
        schedule=cosine(2e-3, args.steps),
    )
    total = time.perf_counter() - t0
    final = accuracy(model, data.x_test, data.y_test)
    print(f"LeNet-5, {torch.get_num_threads()} threads, conv={'ours' if args.ours else 'torch'}")
    if state["hit"]:
        step, t, acc = state["hit"]
        print(
            f"  {args.target:.0%} test accuracy first at step {step}: {t:.1f} s "
            f"(of which evaluation {state['eval']:.1f} s), accuracy {acc:.4f}"
        )
    else:
        print(f"  {args.target:.0%} not reached in {args.steps} steps")
    print(f"  after {args.steps} steps ({total:.1f} s): test accuracy {final:.4f}")


if __name__ == "__main__":
    main()
