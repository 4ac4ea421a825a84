"""Labs, claims, configs, run folders, repeatability, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlatlas.core import (
    ConfigError,
    LabError,
    RunRecord,
    bootstrap_ci,
    lab,
    load_checkpoint,
    per_scale,
    save_checkpoint,
)
from mlatlas.core.lab import Lab, isolated_registry, parse_override, registered_labs
from mlatlas.core.runner import discover, run_lab


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
        cfg = ctx.config(n=per_scale(3, 5, 7), lr=0.5, tag="x", sizes=[1, 2], flag=False)
        positive = ctx.claim(
            "a shifted normal has a positive mean",
            quantity="mean of 20 draws from N(3, 1)",
            direction=">",
            margin=0.0,
        )
        total = 0.0
        for rep in ctx.replicates(cfg.n):
            v = float(rep.rng("draw").standard_normal())
            total += v
            ctx.log(step=rep.id, value=v)
            positive.add(rep.id, 3.0 + rep.rng("mean").standard_normal(20).mean())
        ctx.metric("total", total)
        ctx.metric("cfg", dict(cfg))
        ctx.table("rows", [{"a": 1, "b": np.float32(2.5)}])
        from mlatlas.core import new_figure

        fig, ax = new_figure()
        ax[0, 0].plot([0, 1], [0, 1])
        ctx.figure("line", fig, "a line")
        ctx.check("total is finite", abs(total), direction="<", bound=float("inf"))

    return _framework_probe.spec


with isolated_registry():
    PROBE = _toy_lab()


def test_scratch_labs_do_not_leak():
    names = [s.name for s in registered_labs("backprop")]
    assert "_framework_probe" not in names and "gradient_flow" in names


def test_run_folder_and_result(tmp_path):
    res = run_lab(PROBE, scale="smoke", seed=3, out=tmp_path)
    assert res.ok, res.error
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
    exp, check = r["claims"]
    assert exp["kind"] == "experiment" and exp["verdict"] == "supported" and exp["n"] == 3
    assert exp["insight"] == "gradient flow" and len(exp["samples"][""]) == 3
    assert check["kind"] == "check" and check["verdict"] == "pass"
    assert r["format"] == 2 and RunRecord.load(res.dir) == res
    assert r["memory"]["peak_rss_mb"] > 10
    assert r["versions"]["torch"].startswith("2.")
    lines = (res.dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["step"] == 0


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = run_lab(PROBE, scale="default", seed=1, out=tmp_path)
    b = run_lab(PROBE, scale="default", seed=1, out=tmp_path)
    c = run_lab(PROBE, scale="default", seed=2, out=tmp_path)
    assert a.dir != b.dir
    assert a.metrics == b.metrics and a.claims == b.claims
    assert a.metrics["total"] != c.metrics["total"]
    assert a.claims[0]["samples"] != c.claims[0]["samples"]


def test_overrides_are_typed_and_checked(tmp_path):
    res = run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"n": 4, "lr": 1, "sizes": 3})
    assert res.config == {"n": 4, "lr": 1.0, "tag": "x", "sizes": [3], "flag": False}
    with pytest.raises(ConfigError, match="valid settings: flag, lr, n, sizes, tag"):
        run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"steps": 4})
    with pytest.raises(ConfigError, match="expected a value of type int"):
        run_lab(PROBE, "smoke", 0, out=tmp_path, overrides={"n": "many"})
    with pytest.raises(ConfigError, match="valid scales"):
        run_lab(PROBE, "huge", 0, out=tmp_path)
    # a refused request leaves no run folder behind
    assert all((d / "result.json").exists() for d in (tmp_path / "backprop").glob("*/*"))


def test_per_scale_is_explicit_and_a_plain_tuple_is_one_value(tmp_path):
    """A tuple of three widths is three widths at every scale; only per_scale varies."""

    @lab("backprop", insights=["gradient flow"])
    def _widths(ctx: Lab) -> None:
        """Reads a tuple setting and a per-scale one."""
        cfg = ctx.config(widths=(8, 16, 32), steps=per_scale(1, 2, 3))
        ctx.metric("widths", list(cfg.widths))
        ctx.metric("steps", cfg.steps)
        ctx.check("runs", 0.0, direction="<=", bound=0.0)

    for scale, steps in (("smoke", 1), ("default", 2), ("full", 3)):
        res = run_lab(_widths.spec, scale, 0, out=tmp_path)
        assert res.ok, res.error
        assert res.metrics == {"widths": [8, 16, 32], "steps": steps}
    assert per_scale(1, 2, 3).at("full") == 3
    with pytest.raises(ConfigError, match="valid scales"):
        per_scale(1, 2, 3).at("huge")


def test_a_misspelt_setting_fails_before_the_lab_does_any_work(tmp_path):
    """cfg.stpes is found from the lab's source when it calls ctx.config, not mid-run."""
    worked = []

    @lab("backprop", insights=["gradient flow"])
    def _typo(ctx: Lab) -> None:
        """Misspells a setting after a long first phase."""
        cfg = ctx.config(steps=per_scale(1, 2, 3), lr=0.1)
        worked.append(cfg.lr)  # the long first phase
        ctx.metric("steps", cfg.stpes)

    res = run_lab(_typo.spec, "smoke", 0, out=tmp_path)
    assert not res.ok and "stpes" in res.error and "defined: lr, steps" in res.error
    assert worked == []  # it failed at ctx.config, before the first phase


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
    assert not res.ok and "RuntimeError: boom" in res.error


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
        ctx.check("x", 1.0, direction=">", bound=0.0)

    res = run_lab(_two.spec, "smoke", 0, out=tmp_path)
    assert "name one of" in res.error


def test_a_stated_claim_must_be_measured(tmp_path):
    @lab("backprop", insights=["gradient flow"])
    def _forgets(ctx: Lab) -> None:
        """States a claim, never measures it."""
        ctx.claim("x", quantity="q", direction=">", margin=0.0)

    res = run_lab(_forgets.spec, "smoke", 0, out=tmp_path)
    assert not res.ok and "never given a sample" in res.error


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
    for few in ([], [2.0], list(range(9))):
        with pytest.raises(ValueError, match="at least 10"):
            bootstrap_ci(few)


def test_replicates_after_a_pilot_are_fresh_and_the_same_as_a_longer_run(tmp_path):
    """replicates(n, first=k) gives ids k..k+n-1 with the seeds a run of k + n replicates gives
    those ids: nothing a pilot on ids 0..k-1 saw."""
    seen: dict[str, list[tuple[int, int]]] = {}

    @lab("backprop", insights=["gradient flow"])
    def _pilot_probe(ctx: Lab) -> None:
        """Replicates with and without a pilot."""
        ctx.config(x=1)
        c = ctx.claim("ids", quantity="id", direction=">", margin=-1.0)
        seen["fresh"] = [(r.id, r.seed) for r in ctx.replicates(3, first=4)]
        seen["long"] = [(r.id, r.seed) for r in ctx.replicates(7)]
        for rid, _ in seen["fresh"]:
            c.add(rid, rid)
        ctx.table("t", [{"a": 1}])
        from mlatlas.core import new_figure

        fig, _ = new_figure()
        ctx.figure("f", fig)

    res = run_lab(_pilot_probe.spec, scale="smoke", seed=0, out=tmp_path)
    assert res.ok, res.error
    assert [i for i, _ in seen["fresh"]] == [4, 5, 6]
    assert seen["fresh"] == seen["long"][4:]
