"""Char-GPT on Tiny Shakespeare: wall time to reach a validation loss of 1.88 nats/char
(nanoGPT's CPU recipe; its README reports about that value after a few minutes on a laptop
CPU), and the validation loss at the end of the char_gpt lab's default recipe (1200 steps,
about three minutes on 2 cores), or when `--budget` seconds run out, whichever comes first.

    python benchmarks/charlm.py [--budget SECONDS] [--target 1.88]

Needs MLATLAS_DATA (or the cache) to hold tinyshakespeare/input.txt. Uses the same model
and training recipe as the char_gpt lab at default scale.
"""

from __future__ import annotations

import argparse
import math

import torch

from mlatlas.architectures.transformers.train import CHAR_GPT_SETTINGS, train_char_gpt
from mlatlas.core.data import char_corpus
from mlatlas.core.lab import Config
from mlatlas.core.seeding import derive_seed, seed_global, torch_generator


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--target", type=float, default=1.88)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = Config({k: v[1] if isinstance(v, tuple) else v for k, v in CHAR_GPT_SETTINGS.items()})
    cfg["eval_every"] = 50  # finer than the lab's, to time the crossing of the target
    corpus = char_corpus("tinyshakespeare")
    seed_global(derive_seed(args.seed, "charlm", "init"))  # the model's initialisation
    gen = torch_generator(args.seed, "charlm", "batches")
    _, curve = train_char_gpt(cfg, corpus, gen, budget_s=args.budget)
    reached = next(((s, t) for s, t, v in curve if v <= args.target), None)
    print(
        f"char-GPT {cfg.n_layer}x{cfg.n_embd}, context {cfg.block}, batch {cfg.batch}, "
        f"{torch.get_num_threads()} threads, bf16={cfg.bf16}"
    )
    if reached:
        print(f"  val loss {args.target} reached at step {reached[0]}, {reached[1]:.1f} s")
    else:
        print(f"  val loss {args.target} not reached in {curve[-1][1]:.0f} s")
    step, seconds, val = curve[-1]
    print(
        f"  after {seconds:.1f} s ({step} steps): val loss {val:.4f} nats/char "
        f"({val / math.log(2):.4f} bits/char)"
    )


if __name__ == "__main__":
    main()
