"""How often the verdict rule calls a false claim *supported*, and how skewed labs' samples are.

A claim's verdict (`mlatlas.core.claims`) comes from Student's t on n per-seed values. Its
false-support rate, the share of experiments called supported when the true mean sits exactly
at the margin, is the nominal 2.5% per side for normal samples and lower for symmetric heavy
tails. Under skew one tail inflates: the sample mean and standard deviation are correlated, so
for right-skewed noise a low mean comes with a small s and `<` claims pass too often (Pearson
& Please 1975). What matters is the skew *toward* false support, the **aligned skewness**: the
skewness of the tested values for a `<` claim, minus it for a `>` claim, its size for a
`within` claim (either edge can be crossed).

The core therefore decides one-sample and non-zero-margin claims with a *skew-guarded* t test
(`claims.GUARD_SKEWNESS`): each one-sided p-value is taken under noise skewed toward that
side's false support, at the skewness this module measured in the labs. Paired claims at
margin 0 keep Student's t: under their null of exchangeable arms the differences are
symmetric.

Every decided experiment part records the adjusted Fisher-Pearson skewness of the values it
tested (`skewness`, n >= 3): the per-seed values, their paired differences, or their log10.
At n = 5 one claim's skewness says little (it cannot exceed 2.0 in size, whatever the
distribution). Pooled over many claims it estimates the skew of the noise labs produce:
`pooled_skewness` finds the skewness gamma of a standardized Gamma noise whose expected sample
skewness, at the claims' own n, equals the claims' mean aligned skewness (a method of
moments), with a bootstrap interval over claims. `false_support` then simulates the rule under
that noise. `mlatlas calibrate` prints both for a folder of runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from mlatlas.core.claims import SUPPORTED, Experiment, t_test, verdict_from
from mlatlas.core.stats import bootstrap_ci

Noise = Callable[[np.random.Generator, int], np.ndarray]


def gamma_noise(skew: float) -> Noise:
    """Mean-0, variance-1 noise of skewness `skew`: a standardized Gamma(k = 4 / skew^2),
    mirrored for a negative skew; skew 0 is the normal distribution (its limit), skew 2 the
    exponential."""
    if skew == 0:
        return lambda rng, n: rng.standard_normal(n)
    k, sign = 4.0 / skew**2, math.copysign(1.0, skew)
    return lambda rng, n: sign * (rng.gamma(k, 1.0, n) - k) / math.sqrt(k)


def _lognormal(sign: float) -> Noise:
    mean, sd = math.exp(0.5), math.sqrt((math.e - 1.0) * math.e)  # lognormal(0, 1)
    return lambda rng, n: sign * (rng.lognormal(0.0, 1.0, n) - mean) / sd


NULLS: dict[str, Noise] = {
    "normal": gamma_noise(0.0),
    "student-t3 (heavy tails)": lambda rng, n: rng.standard_t(3, n) / math.sqrt(3.0),
    "chi2(8), skew +1": gamma_noise(1.0),
    "chi2(8) mirrored, skew -1": gamma_noise(-1.0),
    "exponential, skew +2": gamma_noise(2.0),
    "exponential mirrored, skew -2": gamma_noise(-2.0),
    "lognormal(0, 1), skew +6.2": _lognormal(1.0),
    "lognormal mirrored, skew -6.2": _lognormal(-1.0),
}


def false_support(
    noise: Noise,
    n: int,
    direction: str,
    *,
    trials: int = 4000,
    seed: int = 0,
    guard: bool = True,
) -> float:
    """Share of `trials` null experiments (n values, mean exactly at the margin 1.0) that the
    core's rule calls supported (one claim, so Holm changes nothing). guard: the skew-guarded
    test that decides one-sample and non-zero-margin claims; False: plain Student t, which
    decides paired claims at margin 0."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        t = t_test(1.0 + noise(rng, n), direction, 1.0, guard=guard)
        hits += verdict_from(t.p_support, t.p_refute) == SUPPORTED
    return hits / trials


def tested_parts(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A decided experiment's parts decided again from its raw samples by the current code:
    the same values tested (differences, log10, censoring, failure values), with the
    skewness of each part, also for records written before parts recorded one."""
    margin = record["margin"]
    c = Experiment(
        record["statement"],
        record.get("insight", ""),
        record.get("quantity", ""),
        record["direction"],
        tuple(margin) if record["direction"] == "within" else margin,
        paired=record["paired"],
        log=record["log"],
        censor_at=record.get("censor_at"),
        on_failure=record.get("on_failure"),
        unit=record.get("unit", "seed"),
    )
    for part, samples in record["samples"].items():
        for sid, v in samples.items():
            c.add(int(sid), *(v if record["paired"] else (v,)), part=part)
    return {p: c.decide_part(p) for p in c.samples}


def aligned_skewness(record: dict[str, Any]) -> list[tuple[int, float]]:
    """(n, skewness toward false support) of each part of a decided experiment that has one:
    the skewness for a '<' claim, minus it for '>', its size for 'within'."""
    sign = {"<": 1.0, ">": -1.0}.get(record["direction"])
    out = []
    for part in tested_parts(record).values():
        g = part["skewness"]
        if g is not None:
            out.append((int(part["n"]), abs(g) if sign is None else sign * g))
    return out


def _expected_skewness(skews: np.ndarray, ns: Sequence[int], reps: int, seed: int) -> np.ndarray:
    """Mean sample skewness of `gamma_noise(s)` samples, averaged over the claims' sizes ns."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(skews))
    sizes, counts = np.unique(np.asarray(ns), return_counts=True)
    for i, s in enumerate(skews):
        for n, c in zip(sizes, counts, strict=True):
            x = gamma_noise(float(s))(rng, reps * int(n)).reshape(reps, int(n))
            d = x - x.mean(1, keepdims=True)
            m2, m3 = (d * d).mean(1), (d**3).mean(1)
            g = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5
            out[i] += c * g.mean()
    return out / len(ns)


def pooled_skewness(
    claims: Iterable[tuple[int, float]], *, reps: int = 4000, seed: int = 0
) -> dict[str, Any]:
    """The Gamma-noise skewness whose expected sample skewness at the claims' n equals the
    claims' mean aligned skewness, with a bootstrap 95% interval over claims (>= 10 claims)."""
    items = [(n, g) for n, g in claims if n >= 3]
    ns, gs = [n for n, _ in items], np.array([g for _, g in items])
    grid = np.linspace(-4.0, 4.0, 33)
    expected = _expected_skewness(grid, ns, reps, seed)  # increasing in the true skewness

    def invert(mean_g: float) -> float:
        return float(np.interp(mean_g, expected, grid))  # clipped to the grid's ends

    out: dict[str, Any] = {"claims": len(items), "mean_aligned_skewness": float(gs.mean())}
    out["skewness"] = invert(float(gs.mean()))
    if len(items) >= 10:
        lo, hi = bootstrap_ci(gs, seed=seed)
        out["interval"] = (invert(lo), invert(hi))
    return out


def skew_table(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per experiment part with a skewness: lab, statement, n, direction, aligned."""
    rows = []
    for r in records:
        if r.get("kind") != "experiment":
            continue
        for n, g in aligned_skewness(r):
            rows.append(
                {
                    "lab": r.get("lab", ""),
                    "statement": r["statement"],
                    "n": n,
                    "direction": r["direction"],
                    "paired_at_zero": bool(r["paired"]) and _tests_zero(r),
                    "aligned_skewness": g,
                }
            )
    return rows


def _tests_zero(r: dict[str, Any]) -> bool:
    """A paired claim whose margin is 0 (or 1 on the log scale): under the exchangeable null
    its differences are symmetric, so skew cannot inflate it."""
    return r["direction"] != "within" and r["margin"] == (1.0 if r["log"] else 0.0)
