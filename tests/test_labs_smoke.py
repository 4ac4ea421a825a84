"""Every lab of every implemented topic runs at smoke scale (the CI contract), records what it
measured with verdicts decided by the core, and repeats exactly with the same seed."""

from __future__ import annotations

import math

import pytest

from mlatlas.core.record import RunRecord
from mlatlas.core.runner import discover, implemented_topics, run_lab
from mlatlas.guide import get_topic

LABS = [spec for t in implemented_topics() for spec in discover(t)]
IDS = [f"{s.topic}/{s.name}" for s in LABS]
FIRST: dict[str, RunRecord] = {}  # the seed-0 run of each lab, for the repeat test

EXPERIMENT_KEYS = {"statement", "insight", "quantity", "direction", "margin", "estimate"}


def test_topics_1_to_8_have_labs():
    assert [t.number for t in implemented_topics()][:8] == [1, 2, 3, 4, 5, 6, 7, 8]


def _finite_or_none(v) -> bool:
    # result.json writes non-finite numbers as the strings "inf", "-inf", "nan"
    return v is None or v in ("inf", "-inf", "nan") or isinstance(v, (int, float))


@pytest.mark.parametrize("spec", LABS, ids=IDS)
def test_lab_runs_at_smoke_scale(spec, tmp_path):
    r = run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    assert r.ok, r.error
    FIRST[f"{spec.topic}/{spec.name}"] = r
    assert r.claims, "a lab states at least one claim"
    topic = get_topic(spec.topic)
    for c in r.claims:
        assert c["insight"] in topic.insights
        assert set(c) >= EXPERIMENT_KEYS
        assert _finite_or_none(c["estimate"])
        if c["kind"] == "check":
            assert c["verdict"] in ("pass", "fail")
        else:
            assert c["kind"] == "experiment"
            assert c["verdict"] in ("supported", "refuted", "inconclusive")
            assert c["n"] + c["n_failed"] >= 1 and c["samples"]
            if c["n"] < 2:
                assert c["interval"] is None and c["test"] == "point"
            elif c["interval"] is not None and c["estimate"] not in ("nan", None):
                lo, hi = c["interval"]
                assert lo <= c["estimate"] <= hi or math.isclose(lo, hi)
    assert r.figures, "a lab draws at least one figure"
    for fig in r.figures.values():
        for f in fig["files"]:
            assert (r.dir / f).stat().st_size > 1000
    assert r.tables and r.datasets
    assert r.config, "a lab resolves its settings with ctx.config"
    assert RunRecord.load(r.dir) == r


@pytest.mark.parametrize("spec", LABS, ids=IDS)
def test_same_seed_same_claims(spec, tmp_path):
    key = f"{spec.topic}/{spec.name}"
    first = FIRST.get(key) or run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    again = run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    assert first.ok and again.ok
    if spec.timing:  # wall-clock samples: the same claims and sample ids, not the same times
        strip = lambda r: [  # noqa: E731
            (c["statement"], c["kind"], {p: sorted(s) for p, s in c.get("samples", {}).items()})
            for c in r.claims
        ]
        assert strip(again) == strip(first)
        return
    assert again.claims == first.claims
    assert again.tables == first.tables


@pytest.mark.parametrize(
    ("topic", "lab"),
    [("backprop", "gradient_flow"), ("activations", "inductive_bias"), ("optim", "schedules")],
)
def test_another_seed_changes_the_samples(topic, lab, tmp_path):
    spec = next(s for s in discover(topic) if s.name == lab)
    a = FIRST.get(f"{topic}/{lab}") or run_lab(spec, scale="smoke", seed=0, out=tmp_path)
    b = run_lab(spec, scale="smoke", seed=1, out=tmp_path)
    samples = lambda r: [c["samples"] for c in r.claims if c["kind"] == "experiment"]  # noqa: E731
    assert samples(a) and samples(a) != samples(b)
