"""Topic 13's pieces against references: the analytic KL against torch.distributions, the
likelihoods against their log_prob, both gradient estimators against a closed form, the
importance-weighted bound against an exact log-likelihood, MADE's autoregressive masks, the
ensemble objective against one model's, and active units."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import replicate
from mlatlas.generative.vae import (
    VAE,
    GaussianDecoder,
    MADEDecoder,
    active_units,
    bernoulli_log_likelihood,
    elbo,
    fit_vaes,
    free_bits_kl,
    gaussian_kl,
    image_intensities,
    iwae_bound,
    kl_warmup,
    log_importance_weights,
    log_normal,
    member_bounds,
    member_rate_distortion,
    reparameterization_surrogate,
    score_function_surrogate,
    vae_objective,
    yardstick_for,
)
from mlatlas.generative.vae.labs.gradient_variance import (
    ESTIMATORS,
    gradient_draws,
    total_variance,
)

TOL = dict(rtol=1e-5, atol=1e-5)  # float64 unless stated


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = (0.5 * torch.randn(shape, generator=g, dtype=torch.float64)).requires_grad_()
    return mu, logvar


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 7), st.integers(0, 10_000))
def test_analytic_kl_equals_torch_distributions_with_gradients(b, d, seed):
    mu, logvar = _pair((b, d), seed)
    ours = gaussian_kl(mu, logvar)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(ours, ref, **TOL)
    g_ours = torch.autograd.grad(ours.sum(), (mu, logvar))
    g_ref = torch.autograd.grad(ref.sum(), (mu, logvar))
    for a, r in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, r, **TOL)


def test_log_normal_and_bernoulli_equal_log_prob_with_gradients():
    mu, logvar = _pair((3, 5))
    z = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = log_normal(z, mu, logvar)
    ref = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(ours, ref, **TOL)
    for a, r in zip(
        torch.autograd.grad(ours.sum(), (mu, logvar)),
        torch.autograd.grad(ref.sum(), (mu, logvar)),
        strict=True,
    ):
        torch.testing.assert_close(a, r, **TOL)
    logits = (3 * torch.randn(4, 9, dtype=torch.float64)).requires_grad_()
    x = (torch.rand(4, 9, dtype=torch.float64) < 0.5).double()
    ours = bernoulli_log_likelihood(logits, x)
    ref = Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, ref, **TOL)
    (ga,) = torch.autograd.grad(ours.sum(), logits)
    (gr,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(ga, gr, **TOL)


def test_gaussian_decoder_likelihood_equals_normal_log_prob():
    torch.manual_seed(0)
    dec = GaussianDecoder(3, (8,), 6).double()
    with torch.no_grad():
        dec.log_var.fill_(-0.7)
    z, x = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    out = dec(z)
    ours = dec.log_likelihood(out, x)
    ref = Normal(out, (0.5 * dec.log_var).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, ref, **TOL)
    ga = torch.autograd.grad(ours.sum(), dec.log_var, retain_graph=True)[0]
    gr = torch.autograd.grad(ref.sum(), dec.log_var)[0]
    torch.testing.assert_close(ga, gr, **TOL)


def _per_draw_gradients(surrogate, mu, logvar, eps, f):
    """One estimator draw per row of eps: each row gets its own copy of (mu, logvar), so the
    gradient w.r.t. the copies is the per-draw estimate, in one backward pass."""
    m = mu.detach().expand(len(eps), -1).clone().requires_grad_()
    lv = logvar.detach().expand(len(eps), -1).clone().requires_grad_()
    gm, gl = torch.autograd.grad(surrogate(f, m, lv, eps), (m, lv))
    return torch.cat([gm, gl], dim=1)


def test_both_estimators_average_to_the_closed_form_gradient():
    """f(z) = sum z^2, q = N(mu, sigma^2): d/dmu E[f] = 2 mu, d/dlogvar E[f] = sigma^2.
    Averaged over 200,000 draws each estimator lands within 4 standard errors of it."""
    mu = torch.tensor([0.7, -1.2], dtype=torch.float64)
    logvar = torch.tensor([-0.4, 0.3], dtype=torch.float64)
    eps = torch.randn(200_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = torch.cat([2 * mu, logvar.exp()])
    f = lambda z: z.pow(2).sum(-1)  # noqa: E731
    for surrogate in (reparameterization_surrogate, score_function_surrogate):
        g = _per_draw_gradients(surrogate, mu, logvar, eps, f)
        se = g.std(0) / math.sqrt(len(g))
        assert ((g.mean(0) - exact).abs() < 4 * se + 1e-9).all(), (surrogate.__name__, g.mean(0))

    # and a wrong estimator fails the same test
    def wrong(f, m, lv, e):  # the score function without the log q term
        return (f(m + (0.5 * lv).exp() * e).detach() * (m.sum(-1) + lv.sum(-1))).sum()

    g = _per_draw_gradients(wrong, mu, logvar, eps, f)
    assert not ((g.mean(0) - exact).abs() < 4 * g.std(0) / math.sqrt(len(g))).all()


def test_score_function_variance_exceeds_reparameterization_on_the_closed_form():
    """On f(z) = sum z^2 the pathwise gradient's variance is far below the score function's."""
    mu, logvar = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    eps = torch.randn(5000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    f = lambda z: z.pow(2).sum(-1)  # noqa: E731
    var = {
        s.__name__: _per_draw_gradients(s, mu, logvar, eps, f)[:, :3].var(0).sum()
        for s in (reparameterization_surrogate, score_function_surrogate)
    }
    assert var["score_function_surrogate"] > 5 * var["reparameterization_surrogate"]


def _linear_gaussian(seed=0):
    """z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_3): log p(x) is N(x; b, W W^T + s^2 I)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 2, dtype=torch.float64, generator=g)
    b = torch.randn(3, dtype=torch.float64, generator=g)
    s2 = 0.3
    x = torch.randn(3, dtype=torch.float64, generator=g)
    cov = w @ w.T + s2 * torch.eye(3, dtype=torch.float64)
    log_px = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    # the exact posterior: precision I + W^T W / s^2, mean Sigma W^T (x - b) / s^2
    post_cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w.T @ w / s2)
    post_mu = post_cov @ w.T @ (x - b) / s2
    return w, b, s2, x, log_px, post_mu, post_cov


def _log_w(w, b, s2, x, z, mu, logvar):
    log_px_z = log_normal(x, z @ w.T + b, math.log(s2))
    return log_importance_weights(log_px_z, z, mu, logvar)


def test_iwae_bound_rises_with_k_towards_the_exact_log_likelihood():
    w, b, s2, x, log_px, post_mu, post_cov = _linear_gaussian()
    # a diagonal, shifted q: not the posterior, so the bounds are strict
    mu, logvar = post_mu + 0.5, torch.log(torch.diagonal(post_cov)) + 0.5
    g = torch.Generator().manual_seed(0)
    bounds = {}
    for k in (1, 10, 1000):  # 200 independent estimates of L_k each
        z = mu + (0.5 * logvar).exp() * torch.randn(200, k, 2, dtype=torch.float64, generator=g)
        lk = iwae_bound(_log_w(w, b, s2, x, z, mu, logvar))
        bounds[k] = float(lk.mean())
        se = float(lk.std()) / math.sqrt(len(lk))
    assert bounds[1] < bounds[10] < bounds[1000] <= float(log_px) + 3 * se
    assert float(log_px) - bounds[1000] < 0.05 < float(log_px) - bounds[1]


def test_iwae_with_a_posterior_proportional_q_is_exact_for_every_k():
    """With a full-covariance exact posterior written as z = mu + L eps, every weight equals
    p(x), so L_k = log p(x) for k = 1 too. q here is diagonal in a rotated basis: use a model
    whose posterior is diagonal (orthogonal columns of W)."""
    w = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)
    b, s2 = torch.zeros(3, dtype=torch.float64), 0.3
    x = torch.tensor([1.0, -0.4, 0.2], dtype=torch.float64)
    cov = w @ w.T + s2 * torch.eye(3, dtype=torch.float64)
    log_px = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    prec = 1 + torch.diagonal(w.T @ w) / s2
    mu, logvar = (w.T @ x / s2) / prec, -torch.log(prec)
    z = mu + (0.5 * logvar).exp() * torch.randn(7, 5, 2, dtype=torch.float64)
    lw = _log_w(w, b, s2, x, z, mu, logvar)
    torch.testing.assert_close(lw, torch.full_like(lw, float(log_px)), **TOL)
    torch.testing.assert_close(iwae_bound(lw), torch.full((7,), float(log_px), dtype=lw.dtype))


def test_made_is_autoregressive():
    """d logit_i / d x_j = 0 for every j >= i, and some j < i does reach logit i."""
    torch.manual_seed(0)
    dec = MADEDecoder(z_dim=2, hidden=12, x_dim=6).double()
    z = torch.randn(1, 2, dtype=torch.float64)
    x = torch.rand(1, 6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: dec(z, a)[0], x)[:, 0, :]  # (6, 6)
    assert torch.all(torch.triu(jac) == 0)
    assert torch.all(jac[1:].abs().sum(1) > 0)
    # z reaches every output but the first only through the hidden layer's bias path
    jz = torch.autograd.functional.jacobian(lambda a: dec(a, x)[0], z)[:, 0, :]
    assert jz.abs().sum() > 0


def test_made_fails_the_autoregressive_test_without_its_masks():
    torch.manual_seed(0)
    dec = MADEDecoder(z_dim=2, hidden=12, x_dim=6).double()
    dec.mask_in.fill_(1.0)
    z, x = torch.randn(1, 2, dtype=torch.float64), torch.rand(1, 6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda a: dec(z, a)[0], x)[:, 0, :]
    assert torch.any(torch.triu(jac) != 0)


def test_ensemble_objective_equals_each_model_alone():
    """The vmapped ensemble loss of R VAEs equals each VAE's own ELBO on the same binarized
    batch and the same eps; its gradient w.r.t. member r's weights equals model r's."""
    torch.manual_seed(0)
    models = [VAE(12, (7,), 3) for _ in range(3)]
    ens = Ensemble(models)
    data = torch.rand(20, 12)
    idx = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(1))
    beta = torch.tensor([0.5, 1.0, 2.0])
    loss = vae_objective(data, 3, beta=beta)(ens, (idx, torch.tensor(0)), torch.Generator())
    g = torch.Generator().manual_seed(0)
    # the objective's draws, in its order: pixels, then eps
    xb = (torch.rand(3, 5, 12, generator=g) < data[idx]).float()
    eps = torch.randn(3, 5, 3, generator=g)
    loss_again = vae_objective(data, 3, beta=beta)(
        ens, (idx, torch.tensor(0)), torch.Generator().manual_seed(0)
    )
    for r, m in enumerate(models):
        log_px, _, mu, logvar, _ = m(xb[r], eps[r])
        ref = -elbo(log_px, mu, logvar, beta[r]).mean()
        torch.testing.assert_close(loss_again[r], ref, rtol=1e-5, atol=1e-5)
        (g_ens,) = torch.autograd.grad(loss_again[r], ens.stacked[0], retain_graph=True)
        (g_ref,) = torch.autograd.grad(ref, m.encoder.net[0].weight)
        torch.testing.assert_close(g_ens[r], g_ref, rtol=1e-4, atol=1e-6)
    assert loss.shape == (3,)


def test_free_bits_and_warmup():
    mu = torch.zeros(10, 4)
    mu[:, 0] = torch.linspace(-3, 3, 10)
    logvar = torch.zeros(10, 4)
    kl = gaussian_kl(mu, logvar).mean(0)
    assert float(free_bits_kl(mu, logvar, 0.5)) == pytest.approx(float(kl[0]) + 3 * 0.5)
    assert float(free_bits_kl(mu, logvar, 0.0)) == pytest.approx(float(kl.sum()))
    assert [kl_warmup(t, 10) for t in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert kl_warmup(0, 0) == 1.0


def test_objective_warmup_and_free_bits_per_member():
    """At step 0 a warm-up member's loss is its reconstruction term alone; a free-bits member
    with a huge floor pays lam per unit."""
    torch.manual_seed(0)
    ens = Ensemble([VAE(12, (7,), 3) for _ in range(3)])
    data = torch.rand(20, 12)
    idx = torch.randint(0, 20, (3, 5), generator=torch.Generator().manual_seed(1))
    kw = dict(warmup=torch.tensor([0.0, 100.0, 0.0]), free_bits=torch.tensor([0.0, 0.0, 50.0]))
    loss = vae_objective(data, 3, **kw)(
        ens, (idx, torch.tensor(0)), torch.Generator().manual_seed(0)
    )
    rec = vae_objective(data, 3, beta=0.0)(
        ens, (idx, torch.tensor(0)), torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(loss[1], rec[1])
    torch.testing.assert_close(loss[2], rec[2] + 150.0)
    assert loss[0] > rec[0]


def test_member_bounds_order_and_active_units():
    torch.manual_seed(0)
    ens = Ensemble([VAE(12, (7,), 3) for _ in range(2)])
    x = (torch.rand(6, 12) < 0.5).float()
    b = member_bounds(ens, x, (1, 5, 50), torch.Generator().manual_seed(0), chunk=4)
    assert b[1].shape == (2, 6)
    assert (b[50].mean(1) > b[1].mean(1)).all()  # tighter on average
    mu = torch.zeros(100, 4)
    mu[:, 1] = torch.randn(100)
    mu[:, 3] = 0.05 * torch.randn(100)  # variance 0.0025 < 0.01: inactive
    assert int(active_units(mu)) == 1


def test_member_bounds_equal_one_models_own_with_independent_draws_per_k():
    """Each k's L_k from the ensemble equals one model's iwae_bound on the same eps, which come
    in order: k = 1's max(1, draws) samples, then k = 5's, ..."""
    torch.manual_seed(0)
    models = [VAE(12, (7,), 3) for _ in range(2)]
    ens = Ensemble(models)
    x = (torch.rand(3, 12) < 0.5).float()
    ks, draws = (1, 5, 50), 10
    got = member_bounds(ens, x, ks, torch.Generator().manual_seed(2), chunk=8, draws=draws)
    sizes = [10, 10, 50]
    eps = torch.randn(2, 3, sum(sizes), 3, generator=torch.Generator().manual_seed(2))
    for r, m in enumerate(models):
        for k, e in zip(ks, eps[r].split(sizes, dim=1), strict=True):
            log_px, z, mu, logvar, _ = m(x, e)
            lw = log_importance_weights(log_px, z, mu, logvar)
            ref = iwae_bound(lw.reshape(3, -1, k)).mean(-1)
            torch.testing.assert_close(got[k][r], ref.detach())


def test_fit_vaes_pairs_arms_by_seed_and_applies_each_members_beta():
    """Arms of a replicate start from the same weights and see the same minibatches, pixels
    and eps (so with one beta for both arms they end identical after 20 Adam steps);
    replicates differ; a member's beta is its own."""
    reps = [replicate(0, i) for i in range(2)]
    data = torch.rand(64, 12)
    build = lambda: VAE(12, (8,), 3)  # noqa: E731
    kw = dict(steps=20, batch=8, lr=1e-2)
    ens, _ = fit_vaes(None, reps, data, build, arms=2, **kw)
    for p in ens.stacked:  # lr > 0: the arms share pixels and eps too, or they would differ
        torch.testing.assert_close(p[0], p[2])  # arm 0 and arm 1 of replicate 0
        torch.testing.assert_close(p[1], p[3])
    assert not torch.equal(ens.stacked[0][0], ens.stacked[0][1])
    beta = torch.tensor([0.0, 0.0, 20.0, 20.0])
    ens, _ = fit_vaes(None, reps, data, build, arms=2, steps=200, batch=16, lr=1e-2, beta=beta)
    rate, _ = member_rate_distortion(ens, (data > 0.5).float(), torch.Generator().manual_seed(0))
    assert (rate[:2] > 5 * rate[2:]).all(), rate


def test_rate_and_distortion_equal_one_models_own():
    torch.manual_seed(0)
    models = [VAE(12, (7,), 3) for _ in range(2)]
    ens = Ensemble(models)
    x = (torch.rand(9, 12) < 0.5).float()
    rate, dist = member_rate_distortion(ens, x, torch.Generator().manual_seed(4), chunk=4)
    g = torch.Generator().manual_seed(4)
    eps = [torch.randn(2, n, 3, generator=g) for n in (4, 4, 1)]
    eps = torch.cat(eps, dim=1)
    for r, m in enumerate(models):
        log_px, _, mu, logvar, _ = m(x, eps[r])
        torch.testing.assert_close(rate[r], gaussian_kl(mu, logvar).sum(-1).mean().detach())
        torch.testing.assert_close(dist[r], -log_px.mean().detach())


def test_gradient_draws_are_unbiased_on_a_network_and_the_score_function_is_noisier():
    """On a small VAE the three estimators' mean gradients agree within their standard errors,
    and the score function's variance is the largest."""
    torch.manual_seed(0)
    model = VAE(10, (6,), 2)
    model.decoder.requires_grad_(False)
    x = (torch.rand(4, 10) < 0.5).float()
    draws = gradient_draws(model, x, 3000, torch.Generator().manual_seed(0), baseline_draws=10)
    rep, sf, sfb = (draws[k] for k in ESTIMATORS)
    for other in (sf, sfb):
        se = (rep.var(0) / len(rep) + other.var(0) / len(other)).sqrt()
        z = (rep.mean(0) - other.mean(0)) / se
        assert z.abs().max() < 5, z.abs().max()
    assert total_variance(sf) > total_variance(sfb) > total_variance(rep)


def test_pixel_yardstick_scores_and_floor_on_digits():
    data = image_intensities("digits")
    judge = yardstick_for("digits", data.test, data.train, data.y_train)
    floor = judge.floor(200)
    assert floor["classes_present"] == 10 and floor["mean_confidence"] > 0.8
    noise = torch.rand(200, 64)
    bad = judge.scores(data.test[:200], noise)
    assert bad["frechet_distance"] > 10 * floor["frechet_distance"]
    assert bad["precision"] < floor["precision"]
    probs = judge.probabilities(data.test)
    assert float((probs.argmax(1) == data.y_test).double().mean()) > 0.9


def test_image_intensities_pool_and_made_samples():
    data = image_intensities("digits", n_train=50, n_test=20, pool=2)
    assert data.train.shape == (50, 16) and data.side == 4 and data.test.shape == (20, 16)
    assert float(data.train.min()) >= 0.0 and float(data.train.max()) <= 1.0
    full = image_intensities("digits", n_train=50)
    pooled = full.train.reshape(50, 4, 2, 4, 2).mean((2, 4)).reshape(50, 16)
    torch.testing.assert_close(data.train, pooled)
    dec = MADEDecoder(z_dim=2, hidden=8, x_dim=5)
    x = dec.sample(torch.randn(7, 2), torch.Generator().manual_seed(0))
    assert x.shape == (7, 5) and set(x.unique().tolist()) <= {0.0, 1.0}


def test_objective_warmup_ramp_and_partial_free_bits_equal_their_formulas():
    """At steps 0, w/2, w and 2w the loss is -(rec - kl_warmup(t, w) * KL); with a free-bits
    floor some units exceed and others do not, the KL term equals free_bits_kl."""
    torch.manual_seed(0)
    ens = Ensemble([VAE(12, (7,), 3)])
    data = torch.rand(20, 12)
    idx = torch.randint(0, 20, (1, 6), generator=torch.Generator().manual_seed(1))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    rec = vae_objective(data, 3, beta=0.0)(ens, (idx, torch.tensor(0)), g())
    full = vae_objective(data, 3)(ens, (idx, torch.tensor(0)), g())
    kl = full - rec  # the KL term at weight 1
    for t in (0, 5, 10, 20):
        got = vae_objective(data, 3, warmup=10.0)(ens, (idx, torch.tensor(t)), g())
        torch.testing.assert_close(got, rec + kl_warmup(t, 10) * kl)
    gen = g()
    xb = (torch.rand(1, 6, 12, generator=gen) < data[idx]).float()
    eps = torch.randn(1, 6, 3, generator=gen)
    _, _, mu, logvar, _ = ens.member(0)(xb[0], eps[0])
    per_unit = gaussian_kl(mu, logvar).mean(0)
    lam = float(per_unit.detach().median())  # some units above the floor, some below
    assert (per_unit > lam).any() and (per_unit < lam).any()
    got = vae_objective(data, 3, free_bits=lam)(ens, (idx, torch.tensor(0)), g())
    torch.testing.assert_close(
        got, rec + free_bits_kl(mu, logvar, lam).detach(), rtol=1e-5, atol=1e-5
    )


def test_iwae_objective_equals_minus_the_bound_and_refuses_a_beta():
    torch.manual_seed(0)
    model = VAE(12, (7,), 3)
    ens = Ensemble([model])
    data = torch.rand(20, 12)
    idx = torch.randint(0, 20, (1, 4), generator=torch.Generator().manual_seed(1))
    got = vae_objective(data, 3, k=5, iwae=True)(
        ens, (idx, torch.tensor(0)), torch.Generator().manual_seed(0)
    )
    gen = torch.Generator().manual_seed(0)
    xb = (torch.rand(1, 4, 12, generator=gen) < data[idx]).float()
    eps = torch.randn(1, 4, 5, 3, generator=gen)
    log_px, z, mu, logvar, _ = model(xb[0], eps[0])
    ref = -iwae_bound(log_importance_weights(log_px, z, mu, logvar)).mean()
    torch.testing.assert_close(got[0], ref, rtol=1e-5, atol=1e-5)
    (g_got,) = torch.autograd.grad(got[0], ens.stacked[0])
    (g_ref,) = torch.autograd.grad(ref, model.encoder.net[0].weight)
    torch.testing.assert_close(g_got[0], g_ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="IWAE"):
        vae_objective(data, 3, k=5, iwae=True, beta=2.0)


def test_made_is_a_normalised_distribution_and_every_pixel_reaches_the_hidden_layer():
    """Summed over all 2^6 binary images, p(x | z) = 1; with fewer hidden units than D - 1
    every pixel but the last still feeds some hidden unit."""
    torch.manual_seed(0)
    dec = MADEDecoder(z_dim=2, hidden=9, x_dim=6).double()
    xs = torch.tensor([[(i >> j) & 1 for j in range(6)] for i in range(64)], dtype=torch.float64)
    z = torch.randn(1, 2, dtype=torch.float64).expand(64, 2)
    log_p = dec.log_likelihood(dec(z, xs), xs)
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    wide = MADEDecoder(z_dim=2, hidden=40, x_dim=100)
    fed = wide.mask_in.sum(0)
    assert (fed[:-1] > 0).all() and fed[-1] == 0
