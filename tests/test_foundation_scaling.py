"""Topic 11, part B: the scaling-law fits recover known laws (exactly without noise, within
stated tolerances with it, with intervals that cover), the compute-optimal split equals a
numerical minimisation, and the in-context baselines equal numpy's least squares and
scikit-learn's k-NN (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from sklearn.metrics import r2_score
from sklearn.neighbors import KNeighborsRegressor

from mlatlas.architectures.transformers import GPT, GPTConfig
from mlatlas.core import Ensemble
from mlatlas.core.claims import Experiment, decide_lab
from mlatlas.paradigms.foundation_models.incontext import (
    InContextRegressor,
    averaging,
    baseline_errors,
    interleave,
    least_squares,
    nearest_neighbours,
    sample_prompts,
)
from mlatlas.paradigms.foundation_models.scaling import (
    chinchilla_law,
    compute_optimal,
    equal_compute_pair,
    fit_chinchilla,
    fit_power_law,
    non_embedding_params,
    power_law,
    profile_interval_alpha,
    r_squared,
    signed_exponent,
)

N = np.geomspace(5e3, 3e5, 6)


# ------------------------------------------------------------------------------------------
# scaling laws
# ------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    a=st.floats(0.5, 200.0),
    alpha=st.floats(0.05, 1.2),
    c=st.floats(0.0, 3.0),
    lo=st.floats(2.0, 5.0),
    decades=st.floats(1.0, 4.0),
)
def test_power_law_fit_recovers_noise_free_parameters(a, alpha, c, lo, decades):
    n = np.logspace(lo, lo + decades, 7)
    y = power_law(n, a, alpha, c)
    if np.ptp(y) < 1e-3 * max(1.0, abs(c)):  # a flat curve does not identify alpha
        return
    fit = fit_power_law(n, y)
    np.testing.assert_allclose([fit.a, fit.alpha, fit.c], [a, alpha, c], rtol=1e-5, atol=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)
    assert np.abs(fit.residuals).max() < 1e-8


def test_power_law_fit_with_noise_is_close_and_its_profile_interval_covers():
    """Seed noise sd 0.01 nats on 6 sizes x 5 seeds: alpha within 0.05 of the truth on
    average, and the 95% profile interval covers the true alpha in at least 85% of 60 data
    sets (binomial sd of the coverage is about 0.03 at the nominal 0.95)."""
    rng = np.random.default_rng(0)
    a, alpha, c = 30.0, 0.4, 1.8
    n = np.repeat(N, 5)
    covered, errors = 0, []
    for _ in range(60):
        y = power_law(n, a, alpha, c) + rng.normal(0, 0.01, n.size)
        fit = fit_power_law(n, y)
        lo, hi = profile_interval_alpha(n, y)
        assert lo <= fit.alpha <= hi
        covered += lo <= alpha <= hi
        errors.append(fit.alpha - alpha)
    assert covered / 60 >= 0.85
    assert abs(np.mean(errors)) < 0.05


def test_profile_interval_ends_sit_on_the_f_threshold():
    """At each end, the best (a, c) for that alpha has residual sum of squares equal to
    S_min (1 + F(0.95; 1, n-3) / (n-3)): the definition, checked with curve_fit."""
    from scipy import stats

    rng = np.random.default_rng(1)
    n = np.repeat(N, 4)
    y = power_law(n, 20.0, 0.5, 1.0) + rng.normal(0, 0.02, n.size)
    fit = fit_power_law(n, y)
    s_min = np.sum(fit.residuals**2)
    limit = s_min * (1 + stats.f.ppf(0.95, 1, n.size - 3) / (n.size - 3))
    for end in profile_interval_alpha(n, y):
        (a_e, c_e), _ = optimize.curve_fit(
            lambda x, a, c, end=end: power_law(x, a, end, c), n, y, p0=[fit.a, fit.c]
        )
        assert np.sum((y - power_law(n, a_e, end, c_e)) ** 2) == pytest.approx(limit, rel=1e-6)


def test_profile_interval_of_flat_data_reaches_zero():
    """With no dependence on N the interval's lower end is the grid edge, 0: a statement
    "the lower end is above 0" fails on such data."""
    y = 2.0 + np.random.default_rng(4).normal(0, 0.01, N.size * 5)
    lo, _ = profile_interval_alpha(np.repeat(N, 5), y)
    assert lo == 0.0 and not lo > 0


def test_signed_exponent_recovers_alpha_and_flips_sign_for_rising_loss():
    """Noise-free: the exponent to 1e-6; the mirror image 2c - L (loss rising in N) gives
    its negative; a constant gives 0."""
    for a, alpha, c in [(30.0, 0.4, 1.8), (5.0, 1.1, 0.5), (200.0, 0.15, 2.5)]:
        y = power_law(N, a, alpha, c)
        assert signed_exponent(N, y) == pytest.approx(alpha, abs=1e-6)
        assert signed_exponent(N, 2 * c - y) == pytest.approx(-alpha, abs=1e-6)
    assert signed_exponent(N, np.full(N.size, 2.0)) == 0.0


def _exponent_claim(per_seed_losses) -> str:
    """The verdict of the lab's exponent claim ("> 0", margin 0) on per-seed loss curves."""
    claim = Experiment("alpha > 0", "Scale effects", "signed exponent", ">", 0.0)
    for seed, loss in enumerate(per_seed_losses):
        claim.add(seed, signed_exponent(N, loss))
    return decide_lab([claim])[0]["verdict"]


def test_exponent_claim_is_not_supported_on_flat_or_rising_loss():
    """Loss with no dependence on N (noise sd 0.01): in 60 experiments of 5 seeds the claim
    is supported at most 6 times (10%; the t rule's nominal rate is 2.5%). Loss rising in N
    as a power law: refuted. The same noise on falling loss: supported."""
    rng = np.random.default_rng(5)
    flat = [_exponent_claim(2.0 + rng.normal(0, 0.01, (5, N.size))) for _ in range(60)]
    assert flat.count("supported") <= 6
    curve = power_law(N, 30.0, 0.4, 1.8)
    noise = rng.normal(0, 0.01, (5, N.size))
    assert _exponent_claim(2 * 1.8 - curve + noise) == "refuted"
    assert _exponent_claim(curve + noise) == "supported"


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.floats(1e3, 1e7), min_size=2, max_size=8, unique=True),
    steps=st.integers(8, 20000),
)
def test_equal_compute_pair_matches_compute_up_to_a_step(sizes, steps):
    """6 N_max D_eq equals 6 N_small D_full up to the rounding of D_eq to a whole step."""
    n = np.sort(np.array(sizes))
    small, step_eq = equal_compute_pair(n, steps)
    exact = steps * n[small] / n[-1]
    assert small == int(np.argmin(np.abs(np.log(n / (n[-1] / 8)))))
    assert step_eq == max(1, round(exact))
    if exact >= 1:
        ratio = n[-1] * step_eq / (n[small] * steps)
        assert abs(ratio - 1) <= 0.5 / exact + 1e-12


def test_equal_compute_pair_at_the_default_sizes_is_within_one_percent():
    """The default sweep (widths 8-64 of a 2-layer character GPT, 480 steps): width 24 is
    6.9x smaller than width 64, which is stopped after 70 steps, at 1.007x the compute."""
    n = np.array(
        [non_embedding_params(GPT(GPTConfig(65, 64, 2, 4, w))) for w in (8, 16, 24, 32, 48, 64)]
    )
    small, step_eq = equal_compute_pair(n, 480)
    assert (small, step_eq) == (2, 70)
    assert n[-1] * step_eq / (n[small] * 480) == pytest.approx(1.0, abs=0.01)


def test_chinchilla_fit_recovers_parameters():
    """Noise-free: every parameter to 1e-6 relative; with noise sd 0.005 on 48 points the
    exponents within 0.08 and E within 0.1 (the law's parameters trade off, so the noisy
    tolerances are loose)."""
    nn_, dd = np.meshgrid(N, np.geomspace(1e5, 1e8, 8), indexing="ij")
    truth = dict(e=1.5, a=300.0, b=800.0, alpha=0.35, beta=0.4)
    y = chinchilla_law(nn_, dd, **truth).ravel()
    fit = fit_chinchilla(nn_.ravel(), dd.ravel(), y)
    got = [fit.e, fit.a, fit.b, fit.alpha, fit.beta]
    np.testing.assert_allclose(got, list(truth.values()), rtol=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    noisy = y + np.random.default_rng(2).normal(0, 0.005, y.size)
    fit = fit_chinchilla(nn_.ravel(), dd.ravel(), noisy)
    assert abs(fit.alpha - 0.35) < 0.08 and abs(fit.beta - 0.4) < 0.08
    assert abs(fit.e - 1.5) < 0.1
    assert np.std(fit.residuals) < 0.0075


@pytest.mark.parametrize("alpha, beta", [(0.34, 0.28), (0.5, 0.5), (0.2, 0.7)])
def test_compute_optimal_split_minimises_loss_at_fixed_compute(alpha, beta):
    a, b = 406.4, 410.7
    for c in (1e15, 1e19, 1e23):
        n_opt, d_opt = compute_optimal(c, a, b, alpha, beta)
        assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-12)

        def loss(log_n: float, c: float = c) -> float:
            n = np.exp(log_n)
            return float(chinchilla_law(n, c / (6 * n), 0.0, a, b, alpha, beta))

        best = optimize.minimize_scalar(
            loss, bounds=(0.0, 60.0), method="bounded", options={"xatol": 1e-10}
        )
        assert np.log(n_opt) == pytest.approx(best.x, abs=1e-4)


def test_r_squared_equals_sklearn():
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=50), rng.normal(size=50)
    assert r_squared(y, p) == pytest.approx(r2_score(y, p), rel=1e-12)


def test_non_embedding_params_of_a_gpt_is_the_closed_form():
    """Per pre-LN block 12 d^2 + 13 d (two LayerNorms, Q/K/V/O with biases, a 4d MLP), plus
    the final LayerNorm; token and position tables (and the tied head) excluded."""
    for layers, d in [(1, 8), (2, 24), (3, 64)]:
        model = GPT(GPTConfig(vocab=50, block_size=16, n_layer=layers, n_head=4, n_embd=d))
        assert non_embedding_params(model) == layers * (12 * d * d + 13 * d) + 2 * d
        total = sum(p.numel() for p in model.parameters())
        assert non_embedding_params(model) == total - 50 * d - 16 * d


def test_gpt_with_tied_head_stacks_in_an_ensemble():
    """Topic 7's GPT (head tied to the token embedding) in an Ensemble: each member's logits
    and its embedding gradient (summed over both uses of the tied matrix) equal the model's
    alone (float64, 1e-10)."""
    cfg = GPTConfig(vocab=13, block_size=10, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(0)
    members = [GPT(cfg).double() for _ in range(3)]
    ens = Ensemble(members)
    assert "head.weight" not in ens.names
    x = torch.randint(0, 13, (3, 10))
    out = ens(x)
    out.pow(2).sum().backward()
    tok = ens.stacked[ens.names.index("tok.weight")]
    for r, m in enumerate(members):
        alone = m(x)
        torch.testing.assert_close(out[r], alone, rtol=1e-10, atol=1e-12)
        alone.pow(2).sum().backward()
        torch.testing.assert_close(tok.grad[r], m.tok.weight.grad, rtol=1e-10, atol=1e-12)
        copy = ens.member(r)
        assert copy.head.weight is copy.tok.weight
        torch.testing.assert_close(copy(x), alone, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# in-context regression
# ------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 6), k=st.integers(0, 14), seed=st.integers(0, 10_000))
def test_least_squares_equals_numpy_lstsq(d, k, seed):
    """Min-norm least squares (k < d) and ordinary (k >= d) predictions equal numpy's lstsq
    (gelsd, minimum norm) to 1e-8."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = sample_prompts(4, k + 1, d, g, dtype=torch.float64)
    xs, ys = xs[:, :k], ys[:, :k] + 0.1 * torch.randn(4, k, generator=g, dtype=torch.float64)
    xq = torch.randn(4, d, generator=g, dtype=torch.float64)
    got = least_squares(xs, ys, xq).numpy()
    for i in range(4):
        w = np.linalg.lstsq(xs[i].numpy(), ys[i].numpy(), rcond=None)[0] if k else np.zeros(d)
        assert got[i] == pytest.approx(float(xq[i].numpy() @ w), rel=1e-8, abs=1e-8)


def test_least_squares_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(5)
    xs, ys = sample_prompts(3, 7, 4, g, dtype=torch.float64)
    xq = torch.randn(3, 4, generator=g, dtype=torch.float64)
    for k in (2, 6):  # under- and over-determined
        args = (
            xs[:, :k].clone().requires_grad_(),
            ys[:, :k].clone().requires_grad_(),
            xq.clone().requires_grad_(),
        )
        assert torch.autograd.gradcheck(least_squares, args, eps=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 5), k=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_nearest_neighbours_equals_sklearn(d, k, seed):
    g = torch.Generator().manual_seed(seed)
    xs, ys = sample_prompts(3, k, d, g, dtype=torch.float64)
    xq = torch.randn(3, d, generator=g, dtype=torch.float64)
    got = nearest_neighbours(xs, ys, xq).numpy()
    for i in range(3):
        knn = KNeighborsRegressor(n_neighbors=min(3, k)).fit(xs[i].numpy(), ys[i].numpy())
        assert got[i] == pytest.approx(knn.predict(xq[i : i + 1].numpy())[0], rel=1e-12)


def test_averaging_and_empty_prompts():
    g = torch.Generator().manual_seed(6)
    xs, ys = sample_prompts(5, 9, 3, g, dtype=torch.float64)
    xq = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w = np.einsum("nk,nkd->nd", ys.numpy(), xs.numpy()) / 9
    np.testing.assert_allclose(averaging(xs, ys, xq).numpy(), (w * xq.numpy()).sum(1), rtol=1e-12)
    for f in (least_squares, nearest_neighbours, averaging):
        assert torch.equal(f(xs[:, :0], ys[:, :0], xq), torch.zeros(5, dtype=torch.float64))


def test_baseline_errors_column_k_uses_the_first_k_examples():
    g = torch.Generator().manual_seed(7)
    xs, ys = sample_prompts(4, 6, 2, g, dtype=torch.float64)
    err = baseline_errors(xs, ys, averaging)
    for k in range(6):
        manual = (averaging(xs[:, :k], ys[:, :k], xs[:, k]) - ys[:, k]) ** 2 / 2
        torch.testing.assert_close(err[:, k], manual, rtol=0, atol=0)


def test_interleave_layout():
    xs = torch.arange(12.0).view(1, 3, 4)
    ys = torch.tensor([[100.0, 200.0, 300.0]])
    z = interleave(xs, ys)
    assert z.shape == (1, 6, 4)
    torch.testing.assert_close(z[0, ::2], xs[0])
    torch.testing.assert_close(z[0, 1::2, 0], ys[0])
    assert z[0, 1::2, 1:].abs().sum() == 0


def test_in_context_regressor_sees_only_earlier_examples():
    """The prediction for example k+1 depends on x_1..x_{k+1} and y_1..y_k only: its gradient
    with respect to y_{k+1}, ..., and to later x's is exactly zero."""
    torch.manual_seed(0)
    model = InContextRegressor(d=3, n_points=5, n_embd=16, n_layer=2, n_head=2).double()
    xs = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    ys = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    pred = model(xs, ys)
    assert pred.shape == (2, 5)
    for k in range(5):
        gx, gy = torch.autograd.grad(pred[:, k].sum(), (xs, ys), retain_graph=True)
        assert gy[:, k:].abs().sum() == 0 and gx[:, k + 1 :].abs().sum() == 0
        assert gx[:, k].abs().sum() > 0
        if k:
            assert gy[:, :k].abs().sum() > 0
