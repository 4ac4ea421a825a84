"""Claims and their verdicts: a lab states a claim, hands over raw samples; this module decides.

Two kinds of claim:

* **experiment** — a falsifiable sentence about a quantity measured over replicates (seeds) or
  items. The lab fixes, before it measures, the *direction* (``>``, ``<`` or ``within``), the
  *margin* and whether samples are *paired* (two arms matched by seed id) or *logged* (ratios
  tested on log10). It then adds one sample per seed id. The verdict is three-valued:

  - **supported**: the 95% interval lies wholly on the claimed side of the margin,
  - **refuted**: wholly on the other side,
  - **inconclusive**: the interval straddles the margin (or too few samples survived).

* **check** — an exact or by-construction result (an equivalence, a closed form): a single
  value against a bound, counted apart from experiments; its verdict is *pass* or *fail*.

The test is Student's t (skew-guarded where noted below) on the per-seed values (one-sample)
or on per-seed differences a − b (paired by seed id):

    t = (x̄ − m) / (s / √n),     interval  x̄ ± t_{0.975, n−1} · s / √n

Why t and not an exact sign-flip (permutation) test: at n = 5, the smallest two-sided
sign-flip p-value is 2/2⁵ = 1/16 > 0.05, so the exact test could never support anything at the
replicate counts a 2-core CPU affords; the t-test's false-support rate stays at or below the
nominal 2.5% per side for normal and symmetric heavy-tailed noise (`tests/test_claims.py`
simulates 2,000 null experiments of each). Percentile bootstraps are not used for verdicts:
on n ≤ 3 samples their "95%" interval is the sample range.

Skewed noise is the t-test's weak side: skew toward the wrong side of the margin inflates false
support (5.6% at skewness 1, 11% at 2, for n = 5; Pearson & Please 1975). Each decided part
records the skewness of the values it tested, and `mlatlas.core.calibration` pools it over
claims: the one-sample and non-zero-margin claims of topics 1, 2, 9 and 10 at default met a
skewness of 1.40 [0.97, 1.92] toward false support. So those claims are decided by a
**skew-guarded** t: the same statistic, each one-sided p-value taken under noise of skewness
`GUARD_SKEWNESS` toward that side (a standardized Gamma, simulated once per n from a fixed
seed), and the interval widened to match (x̄ ± 4.71 s/√n at n = 5, 3.34 at n = 10, against
Student's 2.78 and 2.26). False support then stays under 5% up to the exponential's skewness
2, both tails; the price is power (a 2-sd effect at n = 5: 53% against 91%), paid in
replicates (`mlatlas.core.power`). A paired claim at margin 0 keeps Student's t: under its null
of exchangeable arms the differences are symmetric.

When every sample is equal (zero spread: tied censored runs, a statistic at its bound) the t
statistic is undefined and the exact sign test decides: p = 2⁻ⁿ, so it takes n ≥ 6 samples on
one side to support or refute.

Multiplicity: within one lab, the one-sided p-values of every experiment are Holm-corrected
(Holm 1979) — the "support" p-values as one family and the "refute" p-values as another — and a
verdict needs the corrected p ≤ 0.025, which with a single claim is exactly "the 95% interval
excludes the margin".

Censoring: a time-to-target quantity declares ``censor_at=budget``; runs that never reach the
target (``inf``) count as the budget (a *restricted* mean, which understates any difference),
and the fraction that reached it is recorded per arm. Two never-reached runs tie at 0.

Failures: a NaN sample (a run that diverged, a quantity that is undefined) is never dropped
silently. With ``on_failure=value`` the claim has said beforehand what a failure means (e.g.
chance accuracy) and the sample takes that value. Otherwise the claim cannot be decided on the
runs that survived (dropping the failures could flatter it): its verdict is *inconclusive*, its
``reason`` says how many and which seed ids failed, and the interval of the survivors is still
shown.

A claim may have several ``part``s (e.g. "sigmoid is slower than *each* of five activations"):
it is supported only if every part is (intersection-union: the largest support p-value),
refuted if any part is (Bonferroni over parts).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlatlas.core.stats import sample_skewness

ALPHA = 0.05  # two-sided: 0.025 on each side
DIRECTIONS = (">", "<", "within")
CHECK_DIRECTIONS = (">", ">=", "<", "<=")
SUPPORTED, REFUTED, INCONCLUSIVE = "supported", "refuted", "inconclusive"
PASS, FAIL = "pass", "fail"


class ClaimError(ValueError):
    """A claim was stated or fed wrongly (a bug in the lab)."""


# ------------------------------------------------------------------------------------------
# the decision rule, on plain arrays
# ------------------------------------------------------------------------------------------


@dataclass
class TTest:
    """One-sided p-values and the 95% interval of a mean against a margin."""

    estimate: float
    interval: tuple[float, float] | None
    n: int
    p_support: float | None  # H0: the mean is on the wrong side of (or at) the margin
    p_refute: float | None  # H0: the mean is on the claimed side of (or at) the margin


# Skewness the guarded rule is calibrated for: the pooled skewness toward false support of the
# one-sample and non-zero-margin claim parts that topics 1, 2, 9 and 10 produced at default
# scale, 1.40 (95% interval 0.97-1.92, 60 parts; `mlatlas calibrate`). Under noise of this
# skewness the guarded rule supports a false claim at the nominal 2.5%; up to skewness 2 (the
# exponential) it stays below 5% (`tests/test_calibration.py` prints the rates). Over every
# lab of topics 1-12 at default (seed 0, 97 parts) the pooled skewness is 1.21 (0.69-1.88),
# where the rule's false support is 1.7% at n = 6 and 4.1% at the interval's upper end.
GUARD_SKEWNESS = 1.4
_GUARD_DRAWS = 400_000
# Above this n the guard is not simulated (at n = 10,000, a per-example claim, that would be 4e9
# draws, 30 GiB): the null at GUARD_MAX_N is moved toward the normal, its quantiles' distance
# from the normal's scaled by sqrt(GUARD_MAX_N / n). The skew's leading Edgeworth term shrinks
# as n^-1/2 (Hall 1992, The Bootstrap and Edgeworth Expansion, ch. 2), the higher ones faster.
# Against direct simulation the scaling errs conservative: 2.5% critical values 2.143, 2.089,
# 2.042 against 2.127, 2.077, 2.027 simulated at n = 200, 400, 1000.
GUARD_MAX_N = 100
_GUARD_CHUNK = 50_000  # rows simulated at a time: at most 40 MB of draws at GUARD_MAX_N


@functools.lru_cache(maxsize=64)
def _guard_null(n: int) -> np.ndarray:
    """Sorted t statistics of n values of mean-0 noise skewed by GUARD_SKEWNESS toward the
    lower tail's false support (a standardized Gamma(4 / skew^2)), from a fixed seed; above
    GUARD_MAX_N, the null at GUARD_MAX_N scaled toward the normal (see above)."""
    if n > GUARD_MAX_N:
        from scipy.special import ndtri

        base = _guard_null(GUARD_MAX_N)
        z = ndtri(np.arange(1, base.size + 1) / (base.size + 1))  # the normal's quantiles
        shrink = math.sqrt(GUARD_MAX_N / n)
        return z + shrink * (base - z)  # sorted: both terms increase with the rank
    k = 4.0 / GUARD_SKEWNESS**2
    rng = np.random.default_rng(20_261_203 + n)
    t = np.empty(_GUARD_DRAWS)
    for lo in range(0, _GUARD_DRAWS, _GUARD_CHUNK):  # one stream, drawn in row order
        x = (rng.gamma(k, 1.0, (min(_GUARD_CHUNK, _GUARD_DRAWS - lo), n)) - k) / math.sqrt(k)
        t[lo : lo + x.shape[0]] = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
    return np.sort(t)


def guard_lower_p(t: float, n: int) -> float:
    """P(T <= t) for the t statistic of n values of right-skewed noise (GUARD_SKEWNESS): the
    p-value of a '<' test guarded against the skew that inflates it. The '>' test uses
    guard_lower_p(-t, n), the mirror image."""
    null = _guard_null(n)
    return (np.searchsorted(null, t, side="right") + 1) / (null.size + 1)


def guard_critical(n: int, level: float = ALPHA / 2) -> float:
    """k(n) such that the guarded test supports a '>' claim when t > k(n) at this one-sided
    level; at ALPHA / 2 the guarded 95% interval is mean +- k(n) * s / sqrt(n)."""
    return float(-np.quantile(_guard_null(n), level))


def t_test(
    x: Sequence[float] | np.ndarray, direction: str, margin: Any, guard: bool = False
) -> TTest:
    """Student-t test of mean(x) against `margin` in `direction` (``>``, ``<`` or ``within``
    with margin = (lo, hi), decided by two one-sided tests). n = 1 gives no interval or p-value.

    guard: each one-sided p-value is taken under noise skewed toward that side's false support
    (GUARD_SKEWNESS) instead of Student's t, and the interval widens to match.
    """
    from scipy import stats as _st  # here, not at import: scipy.stats costs ~0.7 s to load

    x = np.asarray(x, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return TTest(float("nan"), None, 0, None, None)
    mean = float(x.mean())
    if n == 1:
        return TTest(mean, None, 1, None, None)
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    crit = guard_critical(n) if guard else float(_st.t.ppf(1 - ALPHA / 2, n - 1))
    half = crit * se
    interval = (mean - half, mean + half)

    # Zero spread (every sample equal: censored ties, a bounded statistic at its bound) leaves
    # the t statistic undefined; the exact sign test decides instead: n samples all on one
    # side of the margin have probability 2^-n under a null symmetric about it.
    sign_p = 0.5**n

    def upper_tail(m: float) -> float:  # P-value of H0: mu <= m against H1: mu > m
        if se == 0.0:
            return sign_p if mean > m else 1.0
        t = (mean - m) / se
        return guard_lower_p(-t, n) if guard else float(_st.t.sf(t, n - 1))

    def lower_tail(m: float) -> float:  # H0: mu >= m against H1: mu < m
        if se == 0.0:
            return sign_p if mean < m else 1.0
        t = (mean - m) / se
        return guard_lower_p(t, n) if guard else float(_st.t.cdf(t, n - 1))

    if direction == ">":
        return TTest(mean, interval, n, upper_tail(margin), lower_tail(margin))
    if direction == "<":
        return TTest(mean, interval, n, lower_tail(margin), upper_tail(margin))
    lo, hi = margin
    # inside (lo, hi) needs both one-sided tests (TOST); outside needs either side.
    p_sup = max(upper_tail(lo), lower_tail(hi))
    p_ref = min(lower_tail(lo), upper_tail(hi))
    return TTest(mean, interval, n, p_sup, p_ref)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): p_(i) -> max_{j<=i} (m - j + 1) p_(j)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def verdict_from(p_support: float | None, p_refute: float | None) -> str:
    """supported / refuted / inconclusive from (corrected) one-sided p-values."""
    if p_support is not None and p_support <= ALPHA / 2:
        return SUPPORTED
    if p_refute is not None and p_refute <= ALPHA / 2:
        return REFUTED
    return INCONCLUSIVE


def point_verdict(value: float, direction: str, margin: Any) -> str:
    """For one run with no interval: which side of the margin the single value falls on."""
    if not math.isfinite(value):
        return INCONCLUSIVE
    if direction == "within":
        lo, hi = margin
        return SUPPORTED if lo < value < hi else REFUTED
    if value == margin:
        return INCONCLUSIVE
    return SUPPORTED if (value > margin) == (direction == ">") else REFUTED


def check_passes(value: float, direction: str, bound: float) -> bool:
    """A check's pass/fail; NaN never passes."""
    if math.isnan(value):
        return False
    return {
        ">": value > bound,
        ">=": value >= bound,
        "<": value < bound,
        "<=": value <= bound,
    }[direction]


# ------------------------------------------------------------------------------------------
# stated claims, fed with samples
# ------------------------------------------------------------------------------------------


def _num(x: Any) -> float:
    if x is None:
        return float("nan")
    return float(x.item() if hasattr(x, "item") else x)


@dataclass
class Experiment:
    """A stated experimental claim; `add` feeds it one sample per seed id (and part)."""

    statement: str
    insight: str
    quantity: str
    direction: str
    margin: Any
    paired: bool = False
    log: bool = False
    censor_at: float | None = None
    on_failure: float | None = None
    unit: str = "seed"
    test: str = "t"
    samples: dict[str, dict[int, Any]] = field(default_factory=dict)
    kind: str = "experiment"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ClaimError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")
        if self.direction == "within":
            lo, hi = self.margin
            if not lo < hi:
                raise ClaimError(f"'within' needs margin=(lo, hi) with lo < hi, not {self.margin}")
            self.margin = (float(lo), float(hi))
        else:
            self.margin = float(self.margin)
        if self.test != "t":
            raise ClaimError(f"unknown test {self.test!r}; the core decides with 't'")
        if self.log and self.direction != "within" and self.margin <= 0:
            raise ClaimError("a logged claim compares ratios: its margin must be > 0")
        if self.unit not in ("seed", "item"):
            raise ClaimError("unit is 'seed' or 'item'")

    def add(self, sid: int, a: Any, b: Any = None, *, part: str = "") -> None:
        """One sample for seed (or item) id `sid`: a value, or the pair (a, b) of a paired claim."""
        if self.paired == (b is None):
            need = "two values (a, b)" if self.paired else "one value"
            raise ClaimError(f"claim {self.statement!r} takes {need} per seed id")
        arm = self.samples.setdefault(part, {})
        if int(sid) in arm:
            raise ClaimError(f"seed id {sid} given twice to claim {self.statement!r}")
        arm[int(sid)] = (_num(a), _num(b)) if self.paired else _num(a)

    def add_all(self, values: Iterable[Any], *, part: str = "") -> None:
        """Per-item samples (ids 0, 1, ...), e.g. the loss of each validation batch."""
        for i, v in enumerate(values):
            self.add(i, v, part=part)

    # -- deciding ------------------------------------------------------------------------
    def _prepare(self, x: float) -> float:
        """Censor, then (for logged claims) take log10; NaN stays NaN (a failure)."""
        if self.censor_at is not None and (x == math.inf or x > self.censor_at):
            x = self.censor_at
        if math.isnan(x) and self.on_failure is not None:
            x = self.on_failure
        if not math.isfinite(x):
            return float("nan")
        if self.log:
            return math.log10(x) if x > 0 else float("nan")
        return x

    def _margin_t(self) -> Any:
        if not self.log:
            return self.margin
        if self.direction == "within":
            return (math.log10(self.margin[0]), math.log10(self.margin[1]))
        return math.log10(self.margin)

    @property
    def guarded(self) -> bool:
        """Whether the skew guard decides: every claim but a paired one at margin 0 (1 on the
        log scale), whose differences are symmetric under its null of exchangeable arms."""
        return not (self.paired and self.direction != "within" and self._margin_t() == 0.0)

    def _back(self, v: float) -> float:
        return 10**v if self.log else v

    def decide_part(self, part: str) -> dict[str, Any]:
        data = self.samples[part]
        ids = sorted(data)
        values, failed = [], []
        reached = {"a": 0, "b": 0}
        for sid in ids:
            raw = data[sid] if self.paired else (data[sid],)
            for arm, r in zip("ab", raw, strict=False):
                if self.censor_at is not None and math.isfinite(r) and r <= self.censor_at:
                    reached[arm] += 1
            prepared = [self._prepare(r) for r in raw]
            if any(math.isnan(p) for p in prepared):
                failed.append(sid)
                continue
            values.append(prepared[0] - prepared[1] if self.paired else prepared[0])
        guard = self.guarded
        t = t_test(values, self.direction, self._margin_t(), guard=guard)
        out: dict[str, Any] = {
            "n": t.n,
            "n_failed": len(failed),
            "failed_ids": failed,
            "estimate": self._back(t.estimate) if t.n else None,
            "interval": None if t.interval is None else [self._back(v) for v in t.interval],
            "p_support": t.p_support,
            "p_refute": t.p_refute,
            # of the tested values (per-seed values, differences or log10): what skew the rule
            # met; `mlatlas.core.calibration` pools it over claims
            "skewness": sample_skewness(values),
        }
        if self.censor_at is not None:
            arms = "ab" if self.paired else "a"
            out["reached"] = {arm: reached[arm] / max(1, len(ids)) for arm in arms}
        if t.n == 1:
            out["point_verdict"] = point_verdict(t.estimate, self.direction, self._margin_t())
        return out

    def decide(self) -> dict[str, Any]:
        """Estimate, interval, uncorrected p-values and the samples (Holm comes per lab)."""
        if not self.samples:
            raise ClaimError(f"claim {self.statement!r} was stated but never given a sample")
        parts = {p: self.decide_part(p) for p in self.samples}
        if len(parts) == 1:
            head = next(iter(parts.values()))
            p_sup, p_ref = head["p_support"], head["p_refute"]
        else:
            sups = [d["p_support"] for d in parts.values()]
            refs = [d["p_refute"] for d in parts.values()]
            p_sup = None if None in sups else max(sups)
            p_ref = None if None in refs else min(1.0, len(refs) * min(refs))
            # show the part with the weakest support: it decides the claim
            head = max(
                parts.values(), key=lambda d: -1 if d["p_support"] is None else d["p_support"]
            )
        record: dict[str, Any] = {
            "kind": "experiment",
            "statement": self.statement,
            "insight": self.insight,
            "quantity": self.quantity,
            "direction": self.direction,
            "margin": list(self.margin) if self.direction == "within" else self.margin,
            "paired": self.paired,
            "log": self.log,
            "unit": self.unit,
            "test": ("t, skew-guarded" if self.guarded else "t") if head["n"] >= 2 else "point",
            "n": head["n"],
            "n_failed": sum(d["n_failed"] for d in parts.values()),
            "estimate": head["estimate"],
            "interval": head["interval"],
            "p_support": p_sup,
            "p_refute": p_ref,
            "samples": {
                p: {str(k): list(v) if self.paired else v for k, v in s.items()}
                for p, s in self.samples.items()
            },
        }
        if self.censor_at is not None:
            record["censor_at"] = self.censor_at
        if self.on_failure is not None:
            record["on_failure"] = self.on_failure
        if len(parts) > 1:
            record["parts"] = parts
        else:
            for key in ("reached", "failed_ids", "point_verdict", "skewness"):
                if key in head:
                    record[key] = head[key]
        return record


@dataclass
class Check:
    """An exact or by-construction result: one value against a bound."""

    statement: str
    insight: str
    quantity: str
    value: float
    direction: str
    bound: float
    kind: str = "check"

    def __post_init__(self) -> None:
        if self.direction not in CHECK_DIRECTIONS:
            raise ClaimError(f"check direction must be one of {CHECK_DIRECTIONS}")
        self.value = _num(self.value)
        self.bound = float(self.bound)

    def decide(self) -> dict[str, Any]:
        return {
            "kind": "check",
            "statement": self.statement,
            "insight": self.insight,
            "quantity": self.quantity,
            "direction": self.direction,
            "margin": self.bound,
            "estimate": self.value,
            "interval": None,
            "n": 1,
            "verdict": PASS if check_passes(self.value, self.direction, self.bound) else FAIL,
        }


def decide_lab(claims: Sequence[Experiment | Check]) -> list[dict[str, Any]]:
    """Every claim of one lab decided: Holm over the lab's experiments, then the verdicts."""
    records = [c.decide() for c in claims]
    exp = [r for r in records if r["kind"] == "experiment" and r["p_support"] is not None]
    if exp:
        for key in ("p_support", "p_refute"):
            for r, adj in zip(exp, holm([r[key] for r in exp]), strict=True):
                r[f"{key}_holm"] = adj
    for r in records:
        if r["kind"] == "check":
            continue
        if r["p_support"] is None:
            r["verdict"] = r.get("point_verdict", INCONCLUSIVE) if r["n"] == 1 else INCONCLUSIVE
        else:
            r["verdict"] = verdict_from(r["p_support_holm"], r["p_refute_holm"])
        if r["n_failed"] and "on_failure" not in r:
            ids = r.get("failed_ids") or sorted(
                {i for d in r.get("parts", {}).values() for i in d["failed_ids"]}
            )
            r["verdict"] = INCONCLUSIVE
            r["reason"] = (
                f"{r['n_failed']} sample(s) failed (diverged or undefined), "
                f"{r['unit']} id(s) {ids}; the claim does not say what a failure counts as"
            )
        r["family"] = len(exp)
    return records


def summarize(claims: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Counts by kind and verdict."""
    out = {SUPPORTED: 0, REFUTED: 0, INCONCLUSIVE: 0, "checks": 0, "checks_passed": 0}
    for c in claims:
        if c.get("kind") == "check":
            out["checks"] += 1
            out["checks_passed"] += c["verdict"] == PASS
        else:
            out[c["verdict"]] = out.get(c["verdict"], 0) + 1
    return out


def summary_line(claims: Iterable[dict[str, Any]]) -> str:
    """ "experiments: S supported, R refuted, I inconclusive; checks: K of N pass"."""
    s = summarize(claims)
    return (
        f"experiments: {s[SUPPORTED]} supported, {s[REFUTED]} refuted, "
        f"{s[INCONCLUSIVE]} inconclusive; checks: {s['checks_passed']} of {s['checks']} pass"
    )
