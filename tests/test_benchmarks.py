"""The autograd benchmark runs in both of its orders (a few steps only: its ratios are read on a
quiet machine, never in CI) and prints one judged line per dtype."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "autograd_vs_torch.py"


@pytest.mark.parametrize("alone", [False, True])
def test_autograd_benchmark_prints_a_ratio_per_dtype(alone, capsys):
    spec = importlib.util.spec_from_file_location("autograd_vs_torch", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--steps", "3", "--info-batch", "0"] + ["--alone"] * alone)
    lines = [line for line in capsys.readouterr().out.splitlines() if "ratio ours/torch" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["float64", "float32"]
    assert all(line.endswith(("PASS", "MISS")) and "page faults/step" in line for line in lines)
