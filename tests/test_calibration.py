"""The verdict rule's false-support rate under skewed and symmetric nulls (printed), and the
skewness measurement that says which nulls labs meet: a per-claim skewness equal to scipy's,
and a pooled estimate that recovers the skewness of simulated claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlatlas.core.calibration import (
    NULLS,
    aligned_skewness,
    false_support,
    gamma_noise,
    pooled_skewness,
)
from mlatlas.core.claims import Experiment, decide_lab
from mlatlas.core.stats import sample_skewness

TRIALS = 4000
SLACK = 3 * math.sqrt(0.05 * 0.95 / TRIALS)  # three Monte-Carlo standard errors at 5%


def test_sample_skewness_is_scipys_adjusted_g1():
    rng = np.random.default_rng(3)
    for n in (3, 5, 10, 50):
        x = rng.exponential(size=n)
        assert sample_skewness(x) == pytest.approx(stats.skew(x, bias=False), rel=1e-12)
    assert sample_skewness([1.0, 2.0]) is None and sample_skewness([4.0] * 5) is None


def test_gamma_noise_has_the_stated_moments():
    rng = np.random.default_rng(0)
    for skew in (-2.0, -1.0, 0.0, 1.0, 2.0):
        x = gamma_noise(skew)(rng, 400_000)
        assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
        assert stats.skew(x) == pytest.approx(skew, abs=0.05)


def test_every_decided_part_records_the_skewness_it_tested_and_its_alignment():
    c = Experiment("lower", "i", "q", "<", 1.0, log=True)
    values = [0.5, 0.6, 0.55, 2.0, 0.4]
    for i, v in enumerate(values):
        c.add(i, v)
    (r,) = decide_lab([c])
    assert r["skewness"] == pytest.approx(stats.skew(np.log10(values), bias=False))
    assert aligned_skewness(r) == [(5, pytest.approx(r["skewness"]))]  # '<': right skew hurts
    r["direction"] = ">"  # the same samples under a '>' claim: left skew would hurt it
    assert aligned_skewness(r) == [(5, pytest.approx(-r["skewness"]))]


def test_the_pooled_estimate_recovers_the_skewness_of_simulated_claims():
    rng = np.random.default_rng(1)
    for true in (0.0, 2.0):
        claims = [(5, sample_skewness(gamma_noise(true)(rng, 5))) for _ in range(400)]
        est = pooled_skewness(claims, reps=2000)
        lo, hi = est["interval"]
        assert lo <= true <= hi and abs(est["skewness"] - true) < 0.5, est


@pytest.mark.parametrize("n", [5, 10])
def test_false_support_under_symmetric_and_skewed_nulls(n, capsys):
    rates = {
        (name, d): false_support(noise, n, d, trials=TRIALS, seed=7)
        for name, noise in NULLS.items()
        for d in ("<", ">")
    }
    with capsys.disabled():
        print(f"\nfalse 'supported' at n = {n} ({TRIALS} null experiments each; mean at margin)")
        for name in NULLS:
            print(f"  {name:32s} '<' {rates[name, '<']:.3f}   '>' {rates[name, '>']:.3f}")
    for d in ("<", ">"):  # symmetric noise: at the nominal 2.5% per side
        assert abs(rates["normal", d] - 0.025) <= 3 * math.sqrt(0.025 * 0.975 / TRIALS)
        assert rates["student-t3 (heavy tails)", d] <= 0.025 + SLACK
    # right skew inflates '<' claims and deflates '>' ones, its mirror image the reverse
    assert rates["exponential, skew +2", "<"] > 0.05 > rates["exponential, skew +2", ">"]
    assert rates["exponential mirrored, skew -2", ">"] > 0.05


# --- power: the replicates a claim needs, from a pilot ------------------------------------


def test_t_power_is_the_rules_own_rate_of_support():
    from mlatlas.core.claims import t_test, verdict_from
    from mlatlas.core.power import t_power

    rng = np.random.default_rng(5)
    for n, effect in ((5, 1.0), (8, 0.7)):
        hits = sum(
            verdict_from(*_p(t_test(effect + rng.standard_normal(n), ">", 0.0))) == "supported"
            for _ in range(TRIALS)
        )
        assert hits / TRIALS == pytest.approx(t_power(n, effect, 1.0), abs=0.025)


def _p(t):
    return t.p_support, t.p_refute


def test_replicates_for_power_is_the_smallest_n_that_reaches_80_percent():
    from mlatlas.core.power import replicates_for_power, t_power

    n = replicates_for_power(1.0, 1.0)
    assert t_power(n, 1.0, 1.0) >= 0.8 > t_power(n - 1, 1.0, 1.0)
    assert replicates_for_power(1.0, 1.0, family=5) > n  # Holm over five claims costs seeds
    assert replicates_for_power(0.5, 1.0) > n and replicates_for_power(2.0, 1.0) < n
    assert replicates_for_power(0.0, 1.0) is None and replicates_for_power(-1.0, 1.0) is None
    assert replicates_for_power(1.0, 0.0) == 6  # no spread: the sign test needs 2^-n <= 0.025


def test_pilot_table_reads_effect_and_spread_back_from_a_decided_claim():
    from mlatlas.core.power import pilot_table, replicates_for_power

    rng = np.random.default_rng(2)
    a = Experiment("a is above 1", "i", "q", ">", 1.0)
    b = Experiment("b is below 2x", "i", "q", "<", 2.0, log=True)
    xa, xb = 1.5 + 0.4 * rng.standard_normal(6), 10 ** (0.1 + 0.05 * rng.standard_normal(6))
    for i in range(6):
        a.add(i, xa[i])
        b.add(i, xb[i])
    rows = pilot_table(decide_lab([a, b]))
    assert rows[0]["effect"] == pytest.approx(xa.mean() - 1.0)
    assert rows[0]["sd"] == pytest.approx(xa.std(ddof=1))
    lb = np.log10(xb)
    assert rows[1]["effect"] == pytest.approx(np.log10(2.0) - lb.mean())
    assert rows[1]["sd"] == pytest.approx(lb.std(ddof=1))
    for row in rows:
        assert row["replicates_needed"] == replicates_for_power(row["effect"], row["sd"], 2)


# --- the commands ---------------------------------------------------------------------------


def test_calibrate_and_power_commands_read_runs(tmp_path, capsys):
    from mlatlas.cli import main
    from mlatlas.core import Lab, lab
    from mlatlas.core.lab import isolated_registry
    from mlatlas.core.runner import run_lab

    with isolated_registry():

        @lab("backprop", insights=["gradient flow"])
        def _skewed_probe(ctx: Lab) -> None:
            """Claims on exponential samples."""
            cfg = ctx.config(n=8)
            up = ctx.claim("exp(1) draws exceed 0.5", quantity="q", direction=">", margin=0.5)
            down = ctx.claim("exp(1) draws stay below 3", quantity="q", direction="<", margin=3)
            for rep in ctx.replicates(cfg.n):
                up.add(rep.id, rep.rng("x").exponential())
                down.add(rep.id, rep.rng("y").exponential())
            ctx.table("t", [{"a": 1}])

        res = run_lab(_skewed_probe.spec, "smoke", 0, out=tmp_path)
    assert res.ok, res.error
    assert main(["calibrate", "--runs", str(tmp_path), "--scale", "smoke", "--trials", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("backprop/_skewed_probe") == 2 and "every claim: 2 parts" not in out
    assert main(["power", str(res.dir)]) == 0
    out = capsys.readouterr().out
    assert "after Holm over 2 experiment(s)" in out and "exp(1) draws stay below 3" in out
