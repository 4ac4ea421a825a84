"""Labs, claims, configs, run folders, repeatability, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlatlas.core import ConfigError, LabError, bootstrap_ci, lab, load_checkpoint, save_checkpoint
from mlatlas.core.lab import Lab, isolated_registry, parse_override, registered_labs
from mlatlas.core.runner import discover, get_lab, run_lab


@pytest.fixture(autouse=True)
def _scratch_registry():
    discover("backprop")  # the real labs first, so the snapshot holds them
    with isolated_registry():
        yield


def _toy_lab():
    """Registers (once) a tiny lab on topic 1 that exercises every recorder."""

    @lab("backprop", insights=["gradient flow"])
    def _framework_probe(ctx: Lab) -> None:
        """A probe of the lab API."""
        cfg = ctx.config(n=(3, 5, 7), lr=0.5, tag="x", sizes=[1, 2], flag=False)
        total = 0.0
        for i in ctx.progress(cfg.n, desc="steps"):
            v = float(ctx.rng.standard_normal())
            total += v
            ctx.log(step=i, value=v)
        ctx.metric("total", total)
        ctx.metric("cfg", dict(cfg))
        ctx.table("rows", [{"a": 1, "b": np.float32(2.5)}])
        from mlatlas.core import new_figure

        fig, ax = new_figure()
        ax[0, 0].plot([0, 1], [0, 1])
        ctx.figure("line", fig, "a line")
        ctx.claim("total is finite", value=total, holds=np.isfinite(total))

    return _framework_probe.spec


with isolated_registry():
    PROBE = _toy_lab()


def test_scratch_labs_do_not_leak():
    names = [s.name for s in registered_labs("backprop")]
    assert "_framework_probe" not in names and "gradient_flow" in names


def test_run_folder_and_result(tmp_path):
    res = run_lab(PROBE, scale="smoke", seed=3, out=tmp_path)
    assert res.ok, res.result["error"]
    files = {p.name for p in res.dir.iterdir()}
    assert {"config.json", "metrics.jsonl", "result.json", "line.png", "line.svg"} <= files
    assert res.dir.parent == tmp_path / "backprop" / "_framework_probe"
    r = json.loads((res.dir / "result.json").read_text())
    for key in (
        "metrics",
        "tables",
        "claims",
        "datasets",
        "seed",
        "scale",
        "device",
        "versions",
        "wall_time_s",
        "memory",
        "config",
        "insights",
        "started_at",
    ):
        assert key in r, key
    assert r["config"]["n"] == 3 and r["metrics"]["cfg"]["lr"] == 0.5
    assert r["claims"][0]["verdict"] == "supported" and r["claims"][0]["insight"] == "gradient flow"
    assert r["memory"]["peak_rss_mb"] > 10
    assert r["versions"]["torch"].startswith("2.")
    lines = (res.dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["step"] == 0


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = run_lab(PROBE, scale="default", seed=1, out=tmp_path)
    b = run_lab(PROBE, scale="default", seed=1, out=tmp_path)
    c = run_lab(PROBE, scale="default", seed=2, out=tmp_path)
    assert a.dir != b.dir
    assert a.result["metrics"] == b.result["metrics"]
    assert a.result["metrics"]["total"] != c.result["metrics"]["total"]


def test_real_lab_repeats_exactly(tmp_path):
    spec = get_lab("backprop", "gradient_flow")
    a = run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    b = run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    assert a.ok and b.ok
    assert a.result["tables"] == b.result["tables"]
    assert a.result["claims"] == b.result["claims"]


def test_overrides_are_typed_and_checked(tmp_path):
    res = run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"n": 4, "lr": 1, "sizes": 3})
    assert res.result["config"] == {"n": 4, "lr": 1.0, "tag": "x", "sizes": [3], "flag": False}
    with pytest.raises(ConfigError, match="valid settings: flag, lr, n, sizes, tag"):
        run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"steps": 4})
    with pytest.raises(ConfigError, match="expected a int"):
        run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"n": "many"})
    with pytest.raises(ConfigError, match="valid scales"):
        run_lab(PROBE, "huge", 0, out=tmp_path)
    # a refused request leaves no run folder behind
    assert all((d / "result.json").exists() for d in (tmp_path / "backprop").glob("*/*"))


def test_parse_override():
    assert parse_override("steps=100") == ("steps", 100)
    assert parse_override("lr=1e-3") == ("lr", 0.001)
    assert parse_override("widths=[1,2]") == ("widths", [1, 2])
    assert parse_override("name=relu") == ("name", "relu")
    for bad in ("steps", "=3", "a b=1"):
        with pytest.raises(ConfigError):
            parse_override(bad)


def test_lab_errors_are_recorded_not_raised(tmp_path):
    @lab("backprop", insights=["gradient flow"])
    def _fails(ctx: Lab) -> None:
        """Always fails."""
        raise RuntimeError("boom")

    res = run_lab(_fails.spec, "smoke", 0, out=tmp_path)
    assert not res.ok and "RuntimeError: boom" in res.result["error"]


def test_lab_definition_errors():
    with pytest.raises(LabError, match="not an insight of topic backprop"):
        lab("backprop", insights=["attention"])
    with pytest.raises(LabError, match="docstring"):

        @lab("backprop", insights=["gradient flow"])
        def _nodoc(ctx):
            pass


def test_claim_needs_an_insight_when_the_lab_has_several(tmp_path):
    @lab("backprop", insights=["gradient flow", "vanishing/exploding gradients"])
    def _two(ctx: Lab) -> None:
        """Two insights."""
        ctx.claim("x", value=1.0, holds=True)

    res = run_lab(_two.spec, "smoke", 0, out=tmp_path)
    assert "name one of" in res.result["error"]


def test_checkpoint_roundtrip_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    stem = save_checkpoint(tmp_path / "ck" / "m", model, {"step": 7, "note": "x"})
    tensors, state = load_checkpoint(stem)
    assert state == {"step": 7, "note": "x"}
    for k, v in model.state_dict().items():
        assert torch.equal(tensors[k], v)
    raw = (tmp_path / "ck" / "m.safetensors").read_bytes()
    assert b"\x80\x04" not in raw[:2]  # not a pickle stream
    tensors2, _ = load_checkpoint(tmp_path / "ck" / "m.safetensors")
    assert tensors2.keys() == tensors.keys()


def test_bootstrap_interval_covers_the_mean():
    x = np.random.default_rng(0).normal(5, 1, 50)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo < 1.0
    assert bootstrap_ci([2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_mean_and_geometric_mean_intervals():
    from mlatlas.core import geometric_mean_ci, mean_ci

    m, (lo, hi) = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and lo < 2.5 < hi
    g, (glo, ghi) = geometric_mean_ci([1e-6, 1e-4, 1e-2])
    assert abs(g - 1e-4) < 1e-12 and glo < g < ghi
