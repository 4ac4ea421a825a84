"""The decision rules of the core: t-intervals, three verdicts, Holm, censoring, failures,
checks, and a calibration of the whole rule on simulated experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlatlas.core.claims import (
    Check,
    ClaimError,
    Experiment,
    decide_lab,
    holm,
    summary_line,
    t_test,
)


def _exp(direction=">", margin=0.0, **kw) -> Experiment:
    return Experiment("s", "i", "q", direction, margin, **kw)


def _decide(*claims):
    return decide_lab(list(claims))


def test_t_interval_matches_scipy():
    x = np.random.default_rng(0).normal(1.0, 2.0, 7)
    t = t_test(x, ">", 0.0)
    ref = stats.ttest_1samp(x, 0.0, alternative="greater")
    assert t.p_support == pytest.approx(ref.pvalue, rel=1e-12)
    lo, hi = stats.t.interval(0.95, 6, loc=x.mean(), scale=stats.sem(x))
    assert t.interval == pytest.approx((lo, hi), rel=1e-12)
    assert t.p_support + t.p_refute == pytest.approx(1.0)


def test_three_verdicts():
    up, down, flat = _exp(), _exp(), _exp()
    rows = [(1.0, -1.0, 0.3), (1.2, -1.1, -0.2), (0.9, -0.8, 0.1), (1.1, -0.9, -0.1)]
    for i, (a, b, c) in enumerate(rows):
        up.add(i, a)
        down.add(i, b)
        flat.add(i, c)
    r = _decide(up, down, flat)
    assert [x["verdict"] for x in r] == ["supported", "refuted", "inconclusive"]
    assert r[0]["family"] == 3 and r[0]["p_support_holm"] >= r[0]["p_support"]


def test_n_equal_two_needs_a_huge_effect():
    c = _exp()
    c.add(0, 1.0)
    c.add(1, 1.5)  # t = 5, df = 1: one-sided p = 0.063 > 0.025
    assert _decide(c)[0]["verdict"] == "inconclusive"


def test_margin_is_one_sided():
    c = _exp(">", 0.5)
    for i, v in enumerate([0.61, 0.62, 0.60, 0.63, 0.61]):
        c.add(i, v)
    assert _decide(c)[0]["verdict"] == "supported"
    c2 = _exp(">", 0.7)
    for i, v in enumerate([0.61, 0.62, 0.60, 0.63, 0.61]):
        c2.add(i, v)
    assert _decide(c2)[0]["verdict"] == "refuted"


def test_within_is_two_one_sided_tests():
    inside, outside, edge = _exp("within", (0.9, 1.1)), _exp("within", (0.9, 1.1)), None
    edge = _exp("within", (0.9, 1.1))
    for i in range(6):
        inside.add(i, 1.0 + 0.01 * (-1) ** i)
        outside.add(i, 1.5 + 0.01 * (-1) ** i)
        edge.add(i, 1.1 + 0.05 * (-1) ** i)
    assert [r["verdict"] for r in _decide(inside, outside, edge)] == [
        "supported",
        "refuted",
        "inconclusive",
    ]


def test_zero_spread_is_decided_by_the_sign_test():
    """Identical samples make the t statistic undefined: 2^-n decides (n = 5: 1/32 > 0.025)."""
    for n, expected in ((2, "inconclusive"), (5, "inconclusive"), (6, "supported")):
        c = _exp(paired=True)
        for i in range(n):
            c.add(i, 1.0, 0.0)
        r = _decide(c)[0]
        assert r["p_support"] == pytest.approx(0.5**n) and r["verdict"] == expected, n


def test_paired_by_seed_id_not_position():
    c = _exp(paired=True)
    # added out of order: pairs must match by id
    c.add(2, 3.0, 2.0)
    c.add(0, 1.0, 0.0)
    c.add(1, 2.0, 1.0)
    c.add(3, 4.5, 3.0)
    r = _decide(c)[0]
    assert r["estimate"] == pytest.approx(1.125) and r["n"] == 4
    assert r["samples"][""]["2"] == [3.0, 2.0]
    with pytest.raises(ClaimError, match="given twice"):
        c.add(1, 0.0, 0.0)
    with pytest.raises(ClaimError, match="two values"):
        c.add(5, 1.0)


def test_ties_are_inconclusive():
    c = _exp(paired=True)
    for i in range(5):
        c.add(i, 0.3, 0.3)
    assert _decide(c)[0]["verdict"] == "inconclusive"


def test_censored_ties_are_inconclusive_not_refuted():
    """Two arms that never reach the target tie at the budget: no evidence either way."""
    c = _exp(">", 0.0, paired=True, censor_at=1000)
    for i in range(5):
        c.add(i, math.inf, math.inf)
    r = _decide(c)[0]
    assert r["verdict"] == "inconclusive"
    assert r["reached"] == {"a": 0.0, "b": 0.0} and r["n"] == 5 and r["n_failed"] == 0


def test_censoring_uses_the_restricted_mean():
    c = _exp(">", 0.0, paired=True, censor_at=1000)
    slow = [math.inf, math.inf, 900, math.inf, 950]
    fast = [200, 250, 180, 220, 300]
    for i, (a, b) in enumerate(zip(slow, fast, strict=True)):
        c.add(i, a, b)
    r = _decide(c)[0]
    assert r["reached"] == {"a": 0.4, "b": 1.0}
    assert r["estimate"] == pytest.approx(np.mean([800, 750, 720, 780, 650]))
    assert r["verdict"] == "supported"


def test_inf_without_censoring_is_a_failure_and_counted():
    c = _exp()
    for i, v in enumerate([1.0, 1.1, math.inf, 0.9, math.nan, 1.05]):
        c.add(i, v)
    r = _decide(c)[0]
    assert r["n"] == 4 and r["n_failed"] == 2 and r["failed_ids"] == [2, 4]
    assert r["samples"][""]["4"] != r["samples"][""]["4"] or r["samples"][""]["4"] == "nan"


def test_on_failure_imputes():
    c = _exp(">", 0.5, on_failure=0.1)
    for i, v in enumerate([0.9, 0.92, math.nan, 0.91, 0.93]):
        c.add(i, v)
    r = _decide(c)[0]
    assert r["n"] == 5 and r["n_failed"] == 0
    assert r["estimate"] == pytest.approx(np.mean([0.9, 0.92, 0.1, 0.91, 0.93]))


def test_nan_only_is_inconclusive():
    c = _exp()
    for i in range(3):
        c.add(i, math.nan)
    r = _decide(c)[0]
    assert r["verdict"] == "inconclusive" and r["n"] == 0 and r["n_failed"] == 3


def test_log_claims_compare_ratios():
    c = _exp(">", 10.0, log=True, paired=True)
    for i in range(5):
        c.add(i, 1e-2 * (1 + 0.1 * i), 1e-5)
    r = _decide(c)[0]
    assert r["verdict"] == "supported" and 1000 < r["estimate"] < 1500
    with pytest.raises(ClaimError):
        _exp(">", 0.0, log=True)


def test_point_claim_says_so():
    c = _exp("<", 1.88)
    c.add(0, 1.6)
    r = _decide(c)[0]
    assert r["test"] == "point" and r["interval"] is None and r["verdict"] == "supported"


def test_parts_are_intersection_union():
    slowest = _exp(">", 0.0, paired=True)
    for part, effect in (("relu", 5.0), ("gelu", 4.0), ("elu", 0.1)):
        for i in range(5):
            slowest.add(i, 10 + effect + 0.2 * (-1) ** i, 10, part=part)
    r = _decide(slowest)[0]
    assert r["verdict"] == "inconclusive"  # the elu part is not clear
    assert set(r["parts"]) == {"relu", "gelu", "elu"}
    assert r["estimate"] == pytest.approx(0.14)  # the weakest part is shown


def test_holm_matches_the_definition():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []


def test_holm_can_turn_support_into_inconclusive():
    claims = []
    for k in range(6):
        c = _exp()
        for i, v in enumerate([0.7, 1.6, 0.9, 1.5, 1.1]):  # guarded p = 0.0097 alone
            c.add(i, v + 0.0 * k)
        claims.append(c)
    alone = _decide(claims[0])[0]
    assert alone["verdict"] == "supported" and alone["p_support"] > 0.025 / 6
    together = _decide(*claims)
    assert all(r["verdict"] == "inconclusive" for r in together)


def test_checks_are_counted_apart():
    ok = Check("exact", "i", "max |diff|", 1e-15, "<", 1e-10)
    bad = Check("nan never passes", "i", "", math.nan, "<", 1.0)
    c = _exp()
    for i in range(5):
        c.add(i, 1.0 + 0.1 * i)
    records = _decide(ok, bad, c)
    assert [r["verdict"] for r in records] == ["pass", "fail", "supported"]
    assert records[2]["family"] == 1  # checks are not in the Holm family
    assert summary_line(records) == (
        "experiments: 1 supported, 0 refuted, 0 inconclusive; checks: 1 of 2 pass"
    )


def test_a_claim_without_samples_is_a_lab_bug():
    with pytest.raises(ClaimError, match="never given a sample"):
        _decide(_exp())


def _simulate(effect_sd: float, noise: str, n: int = 5, trials: int = 2000) -> float:
    """Share of simulated paired experiments the rule calls supported."""
    rng = np.random.default_rng(12345)
    supported = 0
    for _ in range(trials):
        if noise == "normal":
            d = rng.normal(effect_sd, 1.0, n)
        else:  # Student t with 3 degrees of freedom, scaled to unit variance: heavy tails
            d = effect_sd + rng.standard_t(3, n) / math.sqrt(3.0)
        c = _exp(">", 0.0, paired=True)
        for i, v in enumerate(d):
            c.add(i, v, 0.0)
        supported += _decide(c)[0]["verdict"] == "supported"
    return supported / trials


@pytest.mark.parametrize("noise", ["normal", "heavy"])
def test_calibration_null_and_power(noise, capsys):
    null = _simulate(0.0, noise)
    power = _simulate(2.0, noise)
    with capsys.disabled():
        print(
            f"\n[{noise} noise, n = 5] supported under no effect: {null:.3f}; "
            f"under a 2-sd effect: {power:.3f}"
        )
    slack = 3 * math.sqrt(0.05 * 0.95 / 2000)  # three Monte-Carlo standard errors
    assert null <= 0.05 + slack
    assert power > 0.5
