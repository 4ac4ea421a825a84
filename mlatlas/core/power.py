"""How many replicates a claim needs: the power of the core's t rule, from a pilot.

A lab's comparative claim is decided by a one-sided Student t test at level 0.025, after Holm
over the lab's m experiments (`mlatlas.core.claims`). Holm's first step is Bonferroni, so a
claim whose true mean lies a distance delta beyond its margin, with per-seed spread sigma, is
supported with probability at least

    power(n) = P( T'_{n-1}(delta sqrt(n) / sigma) > t_{1 - 0.025/m, n-1} )

where T'_nu(lambda) is the noncentral t (Cohen 1988, ch. 2); for a one-sample or
non-zero-margin claim the skew-guarded critical value replaces Student's
(`mlatlas.core.claims.guard_critical`). `replicates_for_power` is the
smallest n with power(n) >= 0.8. Its inputs come from a pilot run on other seed ids (another
`--seed`): the pilot's estimate and spread, never the run whose verdict is reported.
`pilot_table` turns a pilot's decided claims into one row per claim: the n each needs, and the
largest of them is the lab's replicate count (capped by its time budget; a lab that cannot
afford it says so).
"""

from __future__ import annotations

import math
from typing import Any

from mlatlas.core.claims import ALPHA, guard_critical

TARGET_POWER = 0.8


def t_power(n: int, effect: float, sd: float, family: int = 1, guard: bool = False) -> float:
    """Power of the one-sided t test at level ALPHA / (2 family) with n replicates, for a true
    mean `effect` beyond the margin (in the claimed direction), per-replicate spread sd and
    normal noise. guard: the skew-guarded test's critical value (one-sample and non-zero-margin
    claims), which needs more replicates for the same power."""
    from scipy import stats

    if n < 2:
        return 0.0
    level = ALPHA / (2 * family)
    if sd <= 0:  # no spread: the sign test decides, 0.5^n <= level needs n samples
        return 1.0 if effect > 0 and 0.5**n <= level else 0.0
    crit = guard_critical(n, level) if guard else stats.t.ppf(1 - level, n - 1)
    return float(stats.nct.sf(crit, n - 1, effect * math.sqrt(n) / sd))


def replicates_for_power(
    effect: float,
    sd: float,
    family: int = 1,
    power: float = TARGET_POWER,
    max_n: int = 100,
    guard: bool = False,
) -> int | None:
    """Smallest n >= 2 whose `t_power` reaches `power`; None if even max_n does not (an effect
    at or on the wrong side of the margin is never supported, whatever n)."""
    if effect <= 0:
        return None
    for n in range(2, max_n + 1):
        if t_power(n, effect, sd, family, guard) >= power:
            return n
    return None


def _guarded(record: dict[str, Any]) -> bool:
    return record.get("test") == "t, skew-guarded"


def _effect_and_sd(part: dict[str, Any], record: dict[str, Any]) -> tuple[float, float] | None:
    """Distance of a pilot part's mean beyond the margin, in the claimed direction, and the
    per-replicate spread, both on the tested scale (differences, log10 if logged), read back
    from the part's 95% interval."""
    from scipy import stats

    lo, hi = part.get("interval") or (None, None)
    n = part.get("n", 0)
    if lo is None or n < 2:
        return None
    log = record["log"]
    tr = (lambda v: math.log10(v)) if log else (lambda v: v)
    centre = (tr(lo) + tr(hi)) / 2
    half = (tr(hi) - tr(lo)) / 2
    crit = guard_critical(n) if _guarded(record) else stats.t.ppf(1 - ALPHA / 2, n - 1)
    sd = half / crit * math.sqrt(n)
    d, m = record["direction"], record["margin"]
    if d == "within":
        effect = min(centre - tr(m[0]), tr(m[1]) - centre)
    else:
        effect = (centre - tr(m)) * (1 if d == ">" else -1)
    return effect, sd


def pilot_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per experiment (its weakest part) of a pilot run: effect, spread and the
    replicates needed for 80% power after Holm over the lab's experiments."""
    experiments = [r for r in records if r.get("kind") == "experiment"]
    rows = []
    for r in experiments:
        needs = []  # (replicates needed or inf, effect, sd) of each part
        for part in (r.get("parts") or {"": r}).values():
            es = _effect_and_sd(part, r)
            if es is not None:
                n = replicates_for_power(*es, family=len(experiments), guard=_guarded(r))
                needs.append((math.inf if n is None else n, *es))
        # every part must be supported, so the weakest part decides the count
        worst = max(needs, default=None)
        rows.append(
            {
                "statement": r["statement"],
                "n_pilot": r.get("n"),
                "effect": None if worst is None else worst[1],
                "sd": None if worst is None else worst[2],
                "replicates_needed": None
                if worst is None or worst[0] == math.inf
                else int(worst[0]),
            }
        )
    return rows


def replicate_note(ctx: Any, used: int, pilot: dict[str, int | None], seed: int = 1000) -> None:
    """Say in the record, at default scale, how the lab's replicate count was chosen.

    `pilot` maps each claim (a short name) to the replicates a default-scale pilot (run seed
    `seed`, read by ``mlatlas power``) asked for 80% power after Holm; None where the pilot's
    effect lay on the wrong side of the margin (no count would do). Where a claim asks for
    more than `used`, the topic's time budget binds and the note says so: that claim's
    verdict may stay inconclusive at this scale."""
    if getattr(ctx, "scale", None) != "default":
        return
    binds = {k: n for k, n in pilot.items() if n is None or n > used}
    asked = ", ".join(f"{k} {'no count' if n is None else n}" for k, n in pilot.items())
    text = (
        f"{used} replicates, chosen from a pilot at seed {seed} (replicates for 80% power: {asked})"
    )
    if binds:
        text += (
            "; the topic's 10-minute budget binds for "
            + ", ".join(binds)
            + ", whose verdicts may stay inconclusive at this scale"
        )
    ctx.note(text)
