"""Optimizers and schedules equal torch.optim step for step (float64, 1e-6 over >= 100 steps)."""

from __future__ import annotations

import warnings

import pytest
import torch

from mlatlas.foundations import optim as ours

CASES = [
    ("sgd", lambda p: ours.SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (
        "momentum",
        lambda p: ours.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    ),
    (
        "nesterov",
        lambda p: ours.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    (
        "adagrad",
        lambda p: ours.Adagrad(p, lr=0.1, weight_decay=1e-3),
        lambda p: torch.optim.Adagrad(p, lr=0.1, weight_decay=1e-3),
    ),
    (
        "rmsprop",
        lambda p: ours.RMSprop(p, lr=0.01, alpha=0.9),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9),
    ),
    (
        "rmsprop_momentum",
        lambda p: ours.RMSprop(p, lr=0.01, momentum=0.5, weight_decay=1e-2),
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, weight_decay=1e-2),
    ),
    (
        "adam",
        lambda p: ours.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2),
    ),
    (
        "adamw",
        lambda p: ours.AdamW(p, lr=0.01, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    ),
]


def _problem(seed: int):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    x = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=gen)
    return model, x, y


@pytest.mark.parametrize(("name", "make_ours", "make_ref"), CASES, ids=[c[0] for c in CASES])
def test_optimizer_equals_torch_for_150_steps(name, make_ours, make_ref):
    a, x, y = _problem(0)
    b, _, _ = _problem(0)
    opt_a, opt_b = make_ours(a.parameters()), make_ref(b.parameters())
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):
        idx = torch.randint(0, 64, (16,), generator=gen)
        for model, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-8)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="momentum > 0"):
        ours.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, nesterov=True)


def _torch_lrs(make, steps: int, lr: float = 0.1) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return out


def _our_lrs(schedule, steps: int) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = ours.SGD([p], lr=0.0)
    s = ours.Scheduled(opt, schedule)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


LR = torch.optim.lr_scheduler
SCHEDULES = [
    ("step", ours.step_decay(0.1, 30, 0.5), lambda o: LR.StepLR(o, 30, 0.5)),
    ("exponential", ours.exponential(0.1, 0.97), lambda o: LR.ExponentialLR(o, 0.97)),
    ("cosine", ours.cosine(0.1, 200, 1e-3), lambda o: LR.CosineAnnealingLR(o, 200, 1e-3)),
    (
        "warmup_cosine",
        ours.warmup_cosine(0.1, 20, 200, start_factor=0.1),
        lambda o: LR.SequentialLR(
            o,
            [LR.LinearLR(o, 0.1, total_iters=20), LR.CosineAnnealingLR(o, 180)],
            milestones=[20],
        ),
    ),
    ("one_cycle", ours.one_cycle(0.1, 200), lambda o: LR.OneCycleLR(o, 0.1, total_steps=200)),
    (
        "one_cycle_linear",
        ours.one_cycle(0.2, 235, 0.1, anneal_strategy="linear"),
        lambda o: LR.OneCycleLR(
            o, 0.2, total_steps=235, pct_start=0.1, anneal_strategy="linear", cycle_momentum=False
        ),
    ),
]


@pytest.mark.parametrize(("name", "schedule", "make"), SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_equal_torch(name, schedule, make):
    torch.testing.assert_close(
        torch.tensor(_our_lrs(schedule, 200), dtype=torch.float64),
        torch.tensor(_torch_lrs(make, 200), dtype=torch.float64),
        rtol=1e-9,
        atol=1e-12,
    )


def test_labs_register_in_order():
    from mlatlas.core.runner import discover

    names = [s.name for s in discover("optim")]
    assert names == [
        "condition_number",
        "saddle_points",
        "adaptive_rates",
        "adam_l2_vs_adamw",
        "schedules",
        "convergence",
    ]


def test_scaled_member_gradients_equal_momentum_sgd_with_scaled_lr():
    """schedules' lr grid in one ensemble: member r's gradient x c_r is momentum SGD with lr
    c_r x the shared scheduled lr, exactly (checked against separate torch.optim runs)."""
    from mlatlas.core import Ensemble, fit
    from mlatlas.core.ensemble import ensemble_cross_entropy
    from mlatlas.foundations.optim.labs.schedules import scale_member_lrs

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=gen)
    models = [torch.nn.Linear(5, 3).double() for _ in range(3)]
    copies = [torch.nn.Linear(5, 3).double() for _ in range(3)]
    for a, b in zip(models, copies, strict=True):
        b.load_state_dict(a.state_dict())
    factors, plan = [0.5, 1.0, 2.0], ours.warmup_cosine(0.1, 5, 30, 0.1)
    ens = Ensemble(models)
    scale_member_lrs(ens, factors)
    batches = [torch.randint(0, 64, (16,), generator=gen) for _ in range(30)]
    opt = ours.SGD(ens.parameters(), lr=plan(0), momentum=0.9)
    fit(
        ens,
        opt,
        ensemble_cross_entropy(x, y),
        (b.expand(3, -1) for b in batches),
        30,
        schedule=plan,
    )
    for r, (m, c) in enumerate(zip(copies, factors, strict=True)):
        ref = torch.optim.SGD(m.parameters(), lr=0.0, momentum=0.9)
        for t, b in enumerate(batches):
            ref.param_groups[0]["lr"] = c * plan(t)
            ref.zero_grad()
            torch.nn.functional.cross_entropy(m(x[b]), y[b]).backward()
            ref.step()
        got = ens.member(r)
        for pa, pb in zip(got.parameters(), m.parameters(), strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-10, atol=1e-12)


def test_expected_error_matches_the_closed_form_for_lam_equal_mu():
    """With lam = mu and eta_t = 1/(mu (t + t0)), 1 - eta_t lam telescopes:
    E e_T^2 = e0^2 ((t0 - 1)/(T + t0 - 1))^2 + sigma^2/mu^2 T/(T + t0 - 1)^2."""
    import numpy as np

    from mlatlas.foundations.optim.labs.convergence import expected_error

    mu, t0, sigma, e0, T = 2.0, 10.0, 0.7, 1.5, 5000
    etas = 1 / (mu * (np.arange(T) + t0))
    got = expected_error(np.array([mu]), np.array([e0]), etas, sigma)[-1]
    want = e0**2 * ((t0 - 1) / (T + t0 - 1)) ** 2 + sigma**2 / mu**2 * T / (T + t0 - 1) ** 2
    assert abs(got / want - 1) < 1e-10


MUON_CASES = [
    ("nesterov", dict(lr=0.02, weight_decay=0.1)),
    ("plain_momentum", dict(lr=0.02, momentum=0.9, nesterov=False, weight_decay=0.0)),
    ("match_rms_adamw", dict(lr=0.01, adjust_lr_fn="match_rms_adamw", ns_steps=3)),
]


@pytest.mark.parametrize(("name", "kw"), MUON_CASES, ids=[c[0] for c in MUON_CASES])
def test_muon_equals_torch_for_30_steps(name, kw):
    """Muon on a tall and a wide matrix equals torch.optim.Muon after 30 steps. Both run the
    Newton-Schulz iteration in bfloat16 with the same operations, so the float32 parameters
    agree to rounding: rtol 1e-5, atol 1e-6 (bf16's own resolution is ~4e-3)."""
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(24, 6, generator=gen) * 0.3  # tall: orthogonalised through its transpose
    w2 = torch.randn(3, 24, generator=gen) * 0.3  # wide
    x = torch.randn(64, 6, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    a = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    b = [w1.clone().requires_grad_(), w2.clone().requires_grad_()]
    opt_a, opt_b = ours.Muon(a, **kw), torch.optim.Muon(b, **kw)
    for _ in range(30):
        idx = torch.randint(0, 64, (16,), generator=gen)
        for (p1, p2), opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            logits = torch.tanh(x[idx] @ p1.T) @ p2.T
            torch.nn.functional.cross_entropy(logits, y[idx]).backward()
            opt.step()
    for pa, pb, p0 in zip(a, b, (w1, w2), strict=True):
        assert (pa - p0).abs().max() > 0.05  # the parameters did move
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_newton_schulz_cubic_converges_to_the_polar_factor():
    """With the cubic coefficients (1.5, -0.5, 0) the iteration converges to U V^T, the
    orthogonal polar factor of G = U S V^T (checked against the SVD in float64, 1e-8)."""
    gen = torch.Generator().manual_seed(0)
    for shape in ((5, 9), (9, 5)):
        g = torch.randn(*shape, generator=gen, dtype=torch.float64)
        u, _, vh = torch.linalg.svd(g, full_matrices=False)
        got = ours.newton_schulz(g, steps=60, coefficients=(1.5, -0.5, 0.0), dtype=torch.float64)
        torch.testing.assert_close(got, u @ vh, rtol=1e-8, atol=1e-8)


def test_newton_schulz_quintic_puts_singular_values_near_one():
    """Muon's quintic (5 steps, float64) moves every singular value of a random matrix into
    (0.5, 1.5), not onto 1 (Jordan et al. 2024: "S' ~ Uniform(0.5, 1.5)")."""
    g = torch.randn(32, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.linalg.svdvals(ours.newton_schulz(g, dtype=torch.float64))
    assert s.min() > 0.5 and s.max() < 1.5


def test_muon_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        ours.Muon([torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="unknown lr rule"):
        ours.Muon([torch.zeros(3, 3, requires_grad=True)], adjust_lr_fn="nope")


def test_expected_error_matches_a_simulation_of_noisy_sgd():
    """The variance recursion is what SGD on the noisy quadratic does: the mean of |x_t - x*|^2
    over 20000 simulated runs stays within 4 Monte Carlo standard errors of it, for a constant
    and a 1/t step, at every one of 200 steps."""
    import numpy as np

    from mlatlas.foundations.optim.labs.convergence import expected_error

    gen = torch.Generator().manual_seed(0)
    lam, sigma, steps = torch.linspace(1.0, 10.0, 4, dtype=torch.float64), 0.5, 200
    for etas in (np.full(steps, 0.05), 1 / (1.0 * (np.arange(steps) + 10.0))):
        e = -torch.ones(20000, 4, dtype=torch.float64)  # x_0 = 0, x* = 1
        errs = []
        for eta in etas:
            e -= float(eta) * (lam * e + sigma * torch.randn(e.shape, generator=gen))
            errs.append((e**2).sum(1))
        errs = torch.stack(errs)
        se = errs.std(1) / 20000**0.5
        want = torch.as_tensor(expected_error(lam.numpy(), -np.ones(4), etas, sigma)[1:])
        assert ((errs.mean(1) - want).abs() < 4 * se).all()


def test_quadratic_results_pass_at_the_lab_settings_and_fail_on_wrong_inputs():
    """Each closed-form check of the convergence lab fails on an input that breaks it: too few
    steps for the 1/t asymptote, a step near 2/L where the floor is no longer proportional to
    eta, constant steps so small that their floors lie below the 1/t error."""
    import numpy as np

    from mlatlas.foundations.optim.labs.convergence import quadratic_results

    lam = np.linspace(1.0, 10.0, 10)
    ok = quadratic_results(lam, 1.0, [0.02, 0.01], 10.0, 5000)
    assert ok["rate_gap"] < 0.01 and abs(ok["floor_ratio"] - 1) < 0.25 and ok["below_floor"] < 1
    assert quadratic_results(lam, 1.0, [0.02, 0.01], 10.0, 100)["rate_gap"] > 0.01
    assert abs(quadratic_results(lam, 1.0, [0.19, 0.01], 10.0, 5000)["floor_ratio"] - 1) > 0.25
    assert quadratic_results(lam, 1.0, [2e-4, 1e-4], 10.0, 5000)["below_floor"] > 1


def _checks(topic: str, name: str, tmp_path, overrides: dict) -> dict[str, dict]:
    from mlatlas.core.runner import get_lab, run_lab

    r = run_lab(get_lab(topic, name), "smoke", 0, out=tmp_path, overrides=overrides)
    assert r.ok, r.error
    return {c["statement"]: c for c in r.claims if c["kind"] == "check"}


def test_convergence_checks_fail_through_the_core_on_wrong_inputs(tmp_path):
    """The lab run with 100 steps, tiny constant steps and a one-iteration solver: the 1/t
    asymptote, the floor ratio (floors not reached), the 1/t error below the floors and the
    reference minimum all fail."""
    checks = _checks(
        "optim",
        "convergence",
        tmp_path,
        {"steps": 100, "etas": [2e-4, 1e-4], "solver_iters": 1, "seeds": 2, "runs": 2},
    )
    assert len(checks) == 4
    assert all(c["verdict"] == "fail" for c in checks.values()), checks


def test_saddle_escape_check_counts_runs_that_never_escaped(tmp_path):
    """With a 100-step budget no run with sigma = 1e-6 can escape (it needs about
    log(1e6) / log(1.05) = 283 steps): the check on the count of never-escaped runs fails, and
    the count is the record's metric."""
    from mlatlas.core.record import RunRecord
    from mlatlas.core.runner import get_lab, run_lab

    over = {"steps": 100, "seeds": 2, "runs": 5, "rosenbrock_steps": 5}
    r = run_lab(get_lab("optim", "saddle_points"), "smoke", 0, out=tmp_path, overrides=over)
    assert r.ok, r.error
    (check,) = [c for c in r.claims if c["kind"] == "check" and "budget" in c["statement"]]
    assert check["verdict"] == "fail" and check["estimate"] >= 10  # the 2 x 5 runs at 1e-6
    assert RunRecord.load(r.dir).metrics["never_escaped_runs"] == check["estimate"]
