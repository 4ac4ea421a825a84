"""Every lab of every implemented topic runs at smoke scale (the CI contract), records what it
measured, and repeats exactly with the same seed."""

from __future__ import annotations

import math

import pytest

from mlatlas.core.runner import discover, implemented_topics, run_lab
from mlatlas.guide import get_topic

LABS = [spec for t in implemented_topics() for spec in discover(t)]


def test_topics_1_to_8_have_labs():
    assert [t.number for t in implemented_topics()][:8] == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("spec", LABS, ids=[f"{s.topic}/{s.name}" for s in LABS])
def test_lab_runs_at_smoke_scale(spec, tmp_path):
    res = run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    r = res.result
    assert res.ok, r["error"]
    assert r["claims"], "a lab states at least one claim"
    topic = get_topic(spec.topic)
    for c in r["claims"]:
        assert c["insight"] in topic.insights
        v = c["value"]  # result.json writes non-finite numbers as the strings "inf", "-inf"
        assert v is None or v in ("inf", "-inf") or (isinstance(v, float) and math.isfinite(v))
        assert c["verdict"] in ("supported", "not supported")
    assert r["figures"], "a lab draws at least one figure"
    for fig in r["figures"].values():
        for f in fig["files"]:
            assert (res.dir / f).stat().st_size > 1000
    assert r["tables"] and r["datasets"]
    assert r["config"], "a lab resolves its settings with ctx.config"


@pytest.mark.parametrize(
    ("topic", "lab"),
    [("activations", "inductive_bias"), ("losses", "mse_vs_ce"), ("optim", "adam_l2_vs_adamw")],
)
def test_same_seed_same_numbers(topic, lab, tmp_path):
    spec = next(s for s in discover(topic) if s.name == lab)
    a = run_lab(spec, scale="smoke", seed=4, out=tmp_path)
    b = run_lab(spec, scale="smoke", seed=4, out=tmp_path)
    assert a.ok and b.ok
    assert a.result["claims"] == b.result["claims"]
    assert a.result["tables"] == b.result["tables"]
