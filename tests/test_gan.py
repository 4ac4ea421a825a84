"""Topic 14's pieces against references: the losses against binary cross-entropy and their
direct formulas, the gradient penalty against a loop over single examples, spectral
normalization against PyTorch's, the two generator losses' gradients against their closed
forms, packing against explicit concatenation, the mode statistics against constructed
samples, and `train_gan` as a deterministic run of the core's `fit`.

Tolerances: float64 comparisons to 1e-10 relative unless stated; the spectral norm matches
PyTorch's to 1e-12 (same operations, same order)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

import mlatlas.generative.gan.train as gan_train
from mlatlas.core.data.synthetic import (
    gaussian_grid_2d,
    gaussian_mixture_2d,
    grid_centres,
    ring_centres,
)
from mlatlas.core.ensemble import Ensemble
from mlatlas.core.train import fit
from mlatlas.generative.gan import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    SpectralNorm,
    critic_batches,
    critic_loss,
    discriminator_loss,
    gan,
    generator_loss_minimax,
    generator_loss_nonsaturating,
    gradient_penalty,
    interpolates,
    mode_coverage,
    pack,
    sample,
    spectral_norm,
    split_losses,
    train_gan,
    wgan_generator_loss,
)

RTOL = 1e-10


@pytest.fixture(autouse=True)
def _one_thread():
    """These networks are tiny: one thread is faster than a thread pool, and much faster on a
    machine whose cores are busy with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _logits(seed: int, *shape: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_(True)


def _value_and_grad(fn, *xs: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    out = fn(*xs)
    return out.detach(), torch.autograd.grad(out.sum(), xs)


def _assert_same(a, b, rtol=RTOL, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# --- losses ----------------------------------------------------------------------------------


def test_losses_equal_binary_cross_entropy_and_direct_formulas():
    real, fake = _logits(0, 64), _logits(1, 64)

    def bce(logits, target):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    cases = [
        (discriminator_loss, lambda r, f: bce(r, 1.0) + bce(f, 0.0), (real, fake)),
        (generator_loss_nonsaturating, lambda f: bce(f, 1.0), (fake,)),
        (generator_loss_minimax, lambda f: -bce(f, 0.0), (fake,)),  # log(1 - D) = -BCE(l, 0)
        (generator_loss_minimax, lambda f: torch.log(1 - torch.sigmoid(f)).mean(), (fake,)),
        (critic_loss, lambda r, f: f.mean() - r.mean(), (real, fake)),
        (wgan_generator_loss, lambda f: -f.mean(), (fake,)),
    ]
    for ours, reference, args in cases:
        v1, g1 = _value_and_grad(ours, *args)
        v2, g2 = _value_and_grad(reference, *args)
        _assert_same(v1, v2)
        for a, b in zip(g1, g2, strict=True):
            _assert_same(a, b)


def test_losses_stay_finite_at_confident_logits():
    """At |l| = 800 sigmoid rounds to 0 or 1 even in float64 and the naive log gives inf;
    softplus does not."""
    real = torch.tensor([800.0, -800.0], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([-800.0, 800.0], dtype=torch.float64, requires_grad=True)
    naive = -torch.log(torch.sigmoid(fake)).mean()
    assert torch.isinf(naive)
    for loss in (
        discriminator_loss(real, fake),
        generator_loss_nonsaturating(fake),
        generator_loss_minimax(fake),
    ):
        grads = torch.autograd.grad(loss, (real, fake), allow_unused=True)
        assert torch.isfinite(loss)
        assert all(g is None or torch.isfinite(g).all() for g in grads)
    assert float(generator_loss_nonsaturating(fake.detach())) == pytest.approx(
        400.0
    )  # (800 + 0) / 2


def test_losses_give_one_value_per_ensemble_member():
    real, fake = _logits(2, 3, 16), _logits(3, 3, 16)
    per_member = discriminator_loss(real, fake)
    assert per_member.shape == (3,)
    for r in range(3):
        _assert_same(per_member[r], discriminator_loss(real[r], fake[r]))


def test_saturating_and_nonsaturating_gradients_match_their_closed_forms():
    """d/dl of log(1 - sigma(l)) is -sigma(l); of -log sigma(l) it is -(1 - sigma(l)). Where D
    rejects the fakes (l = -10, D(G(z)) = 4.5e-5) the minimax gradient is e^{-10} times the
    non-saturating one: the generator of the game as written learns almost nothing there."""
    fake = torch.linspace(-12.0, 4.0, 33, dtype=torch.float64, requires_grad=True)
    n = len(fake)
    (g_minimax,) = torch.autograd.grad(generator_loss_minimax(fake), fake)
    (g_ns,) = torch.autograd.grad(generator_loss_nonsaturating(fake), fake)
    d = torch.sigmoid(fake.detach())
    _assert_same(g_minimax, -d / n)
    _assert_same(g_ns, -(1 - d) / n)
    at = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    (s,) = torch.autograd.grad(generator_loss_minimax(at), at)
    (ns,) = torch.autograd.grad(generator_loss_nonsaturating(at), at)
    assert float(s / ns) == pytest.approx(np.exp(-10.0), rel=1e-12)  # D / (1 - D) = e^l
    assert float(ns) == pytest.approx(-1.0, abs=1e-4)


# --- gradient penalty ------------------------------------------------------------------------


def _penalty_by_loop(critic, x_hat: torch.Tensor, lam: float) -> torch.Tensor:
    """The definition, one example at a time: autograd on f(x^_i) alone."""
    terms = []
    for i in range(len(x_hat)):
        xi = x_hat[i : i + 1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(critic(xi).sum(), xi, create_graph=True)
        terms.append((g.flatten().norm() - 1) ** 2)
    return lam * torch.stack(terms).mean()


def _grads(y: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """dy/dp, zero for a parameter y does not depend on (the last bias shifts f, not its
    gradient in x)."""
    grads = torch.autograd.grad(y, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def _mlp_critic() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0)).double()


def _conv_critic() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 1),
        nn.Flatten(0),
    ).double()


@pytest.mark.parametrize("shape, make", [((12, 2), _mlp_critic), ((5, 3, 6, 6), _conv_critic)])
def test_gradient_penalty_equals_a_loop_over_single_examples(shape, make):
    critic = make()
    g = torch.Generator().manual_seed(6)
    real = torch.randn(*shape, generator=g, dtype=torch.float64)
    fake = torch.randn(*shape, generator=g, dtype=torch.float64)
    x_hat = interpolates(real, fake, torch.Generator().manual_seed(7))
    params = list(critic.parameters())

    ours = gradient_penalty(critic, x_hat, lam=10.0)
    reference = _penalty_by_loop(critic, x_hat, 10.0)
    _assert_same(ours, reference)
    # the penalty trains the critic: equal gradients in its weights (create_graph=True)
    for a, b in zip(_grads(ours, params), _grads(reference, params), strict=True):
        _assert_same(a, b)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    batch=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_gradient_penalty_of_a_quadratic_critic_has_its_closed_form(shape, batch, seed):
    """f(x) = ||x||^2 / 2 has grad_x f = x: the penalty is lambda mean_i (||x_i|| - 1)^2 with
    ||x_i|| over all of example i's entries, whatever their shape."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *shape, generator=g, dtype=torch.float64)
    ours = gradient_penalty(lambda v: 0.5 * v.pow(2).flatten(1).sum(1), x, lam=10.0)
    norms = torch.stack([xi.pow(2).sum().sqrt() for xi in x])
    _assert_same(ours.detach(), 10.0 * ((norms - 1) ** 2).mean())


def test_a_penalty_with_the_norm_over_the_wrong_axes_fails_the_loop_test():
    """The power of the test above: for images, a norm over the channels only (per pixel)
    or over the whole batch gives a different number."""
    critic = _conv_critic()
    g = torch.Generator().manual_seed(8)
    x_hat = torch.randn(5, 3, 6, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    per_pixel = 10 * ((grad.norm(dim=1) - 1) ** 2).mean()
    whole_batch = 10 * (grad.norm() - 1) ** 2
    reference = _penalty_by_loop(critic, x_hat, 10.0)
    per_pixel, whole_batch, reference = (t.detach() for t in (per_pixel, whole_batch, reference))
    for wrong in (per_pixel, whole_batch):
        assert abs(float(wrong - reference)) > 1e-3 * abs(float(reference))


def test_interpolates_lie_on_the_segments_with_one_weight_per_example():
    g = torch.Generator().manual_seed(9)
    real, fake = torch.randn(7, 3, 4, 4, generator=g), torch.randn(7, 3, 4, 4, generator=g)
    x_hat = interpolates(real, fake, torch.Generator().manual_seed(10))
    eps = ((x_hat - fake) / (real - fake)).flatten(1)
    assert torch.allclose(eps, eps[:, :1].expand_as(eps), atol=1e-4)
    assert ((eps >= 0) & (eps <= 1)).all()


def test_gradient_penalty_of_an_ensemble_is_each_members_own():
    """Batch axes (R, B): the penalty through the vmapped ensemble, one value per member,
    equal to each member's penalty computed alone."""
    members = [_mlp_critic() for _ in range(2)]
    with torch.no_grad():
        members[1][0].weight.mul_(3.0)  # the two members differ
    ens = Ensemble(copy.deepcopy(members))
    g = torch.Generator().manual_seed(11)
    x_hat = torch.randn(2, 9, 2, generator=g, dtype=torch.float64)
    ours = gradient_penalty(lambda x: ens(x, per_member=True), x_hat, 10.0, batch_dims=2)
    assert ours.shape == (2,)
    grads = _grads(ours.sum(), list(ens.stacked))
    for r, m in enumerate(members):
        alone = gradient_penalty(m, x_hat[r], 10.0)
        _assert_same(ours[r], alone)
        for stacked, own in zip(grads, _grads(alone, list(m.parameters())), strict=True):
            _assert_same(stacked[r], own)


# --- spectral normalization ------------------------------------------------------------------


def _twin(base: nn.Module) -> tuple[nn.Module, nn.Module]:
    """PyTorch's spectral norm and ours on copies of one layer, ours given PyTorch's u and v."""
    theirs = torch_spectral_norm(copy.deepcopy(base))
    ours = spectral_norm(copy.deepcopy(base))
    sn = ours.parametrizations.weight[0]
    reference = theirs.parametrizations.weight[0]
    sn.u, sn.v = reference._u.clone(), reference._v.clone()
    return theirs, ours


@pytest.mark.parametrize(
    "make, shape",
    [(lambda: nn.Linear(7, 5), (6, 7)), (lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 6))],
)
def test_spectral_norm_equals_pytorchs_over_training_steps(make, shape):
    torch.manual_seed(12)
    theirs, ours = _twin(make().double())
    x = torch.randn(*shape, dtype=torch.float64)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (theirs, ours)]
    for _ in range(4):  # each training forward: one power iteration, then W / sigma
        ya, yb = theirs(x), ours(x)
        _assert_same(ya, yb, rtol=1e-12)
        for y, opt in zip((ya, yb), opts, strict=True):
            opt.zero_grad()
            y.pow(2).sum().backward()
        _assert_same(
            theirs.parametrizations.weight.original.grad,
            ours.parametrizations.weight.original.grad,
            rtol=1e-12,
        )
        for opt in opts:
            opt.step()
    pa, pb = theirs.parametrizations.weight[0], ours.parametrizations.weight[0]
    _assert_same(pa._u, pb.u, rtol=1e-12)
    _assert_same(pa._v, pb.v, rtol=1e-12)
    theirs.eval(), ours.eval()  # evaluation: no iteration, the same estimate
    _assert_same(theirs(x), ours(x), rtol=1e-12)
    _assert_same(pa._u, pb.u, rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(out=st.integers(1, 9), inp=st.integers(1, 9), seed=st.integers(0, 1000))
def test_spectral_norm_equals_pytorchs_for_any_linear_shape(out, inp, seed):
    torch.manual_seed(seed)
    theirs, ours = _twin(nn.Linear(inp, out).double())
    x = torch.randn(3, inp, dtype=torch.float64)
    for _ in range(2):
        _assert_same(theirs(x), ours(x), rtol=1e-10, atol=1e-10)


def test_spectral_norm_sigma_converges_to_the_largest_singular_value():
    """After many training forwards with W fixed, u^T W v is ||W||_2 and W_SN has norm 1."""
    torch.manual_seed(13)
    conv = spectral_norm(nn.Conv2d(4, 6, 3).double())
    sn: SpectralNorm = conv.parametrizations.weight[0]
    w = conv.parametrizations.weight.original.detach()
    true = torch.linalg.matrix_norm(w.flatten(1), 2)
    with torch.no_grad():
        for _ in range(500):
            _ = conv.weight  # each access in training mode is one power iteration
        assert float(sn.sigma(w)) == pytest.approx(float(true), rel=1e-10)
        assert float(torch.linalg.matrix_norm(conv.weight.flatten(1), 2)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two dimensions"):
        SpectralNorm(torch.ones(3))


# --- packing ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 4), packs=st.integers(1, 5), image=st.booleans(), seed=st.integers(0, 99))
def test_pack_concatenates_m_consecutive_examples(m, packs, image, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (m * packs, 2, 3, 3) if image else (m * packs, 3)
    x = torch.randn(*shape, generator=g)
    packed = pack(x, m)
    for j in range(packs):  # vectors end to end, images channel after channel
        _assert_same(packed[j], torch.cat([x[j * m + i] for i in range(m)], dim=0))
    ens_x = torch.stack([x, 2 * x])  # (R, B, ...): the batch axis is the second
    _assert_same(pack(ens_x, m, batch_dims=2)[1], pack(2 * x, m))
    if m > 1:
        with pytest.raises(ValueError, match="packs"):
            pack(x[:-1], m)


# --- mode statistics and data ----------------------------------------------------------------


def test_benchmark_mixtures_have_the_stated_centres():
    ring, grid = ring_centres(8, 2.0), grid_centres(5, 2.0)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 2.0)
    assert sorted(set(grid[:, 0].round(12))) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert grid.shape == (25, 2) and np.allclose(grid.mean(0), 0.0)
    x, y = gaussian_grid_2d(4000, np.random.default_rng(0))
    assert set(y) == set(range(25))
    radius = np.linalg.norm(x - grid[y], axis=1)  # Rayleigh: mean s sqrt(pi / 2)
    np.testing.assert_allclose(radius.mean(), 0.05 * np.sqrt(np.pi / 2), rtol=0.05)
    # the ring's function still draws what it drew before its centres moved to ring_centres
    xr, yr = gaussian_mixture_2d(50, 5, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    y0 = rng.integers(0, 5, size=50)
    angle = 2 * np.pi * np.arange(5) / 5
    x0 = 4.0 * np.stack([np.cos(angle), np.sin(angle)], 1)[y0] + 0.5 * rng.standard_normal((50, 2))
    np.testing.assert_array_equal(xr, x0)
    np.testing.assert_array_equal(yr, y0)


def test_mode_coverage_on_constructed_samples():
    centres, std = ring_centres(8, 2.0), 0.02
    rng = np.random.default_rng(2)
    one_mode = centres[3] + std * rng.standard_normal((2500, 2))
    spread = np.concatenate([c + std * rng.standard_normal((300, 2)) for c in centres])
    far = 10.0 + rng.standard_normal((100, 2))

    c = mode_coverage(one_mode, centres, std)
    assert c.covered == 1 and c.counts[3] == c.counts.sum() and c.high_quality > 0.97
    c = mode_coverage(spread, centres, std)
    assert c.covered == 8 and c.modes == 8 and c.high_quality > 0.97
    assert c.high_quality == pytest.approx(1 - np.exp(-4.5), abs=0.01)  # chi with 2 dof
    c = mode_coverage(far, centres, std)
    assert c.covered == 0 and c.high_quality == 0.0
    # min_count: a mode with only a few high-quality samples is not covered
    few = np.concatenate([one_mode, centres[0] + np.zeros((5, 2))])
    assert mode_coverage(few, centres, std).covered == 2
    assert mode_coverage(few, centres, std, min_count=20).covered == 1


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 9), seed=st.integers(0, 1000))
def test_mode_coverage_equals_a_direct_loop(n, k, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 2)) * 3
    spread = rng.choice([0.1, 2.0], n)[:, None]  # some samples near a mode, some not
    samples = centres[rng.integers(0, k, n)] + spread * rng.normal(size=(n, 2))
    std = 0.3
    counts = np.zeros(k, dtype=int)
    good = 0
    for x in samples:
        d = [float(np.sqrt(((x - mu) ** 2).sum())) for mu in centres]
        j = int(np.argmin(d))
        if d[j] <= 3 * std:
            counts[j] += 1
            good += 1
    c = mode_coverage(samples, centres, std)
    np.testing.assert_array_equal(c.counts, counts)
    assert c.covered == int((counts >= 1).sum())
    assert c.high_quality == pytest.approx(good / n)


# --- models and training ---------------------------------------------------------------------


def test_dcgan_shapes_ranges_and_normalizations():
    torch.manual_seed(14)
    g, z = DCGANGenerator(z_dim=16, width=8), torch.randn(4, 16)
    img = g(z)
    assert img.shape == (4, 1, 28, 28) and img.abs().max() <= 1
    kinds = [("batch", True, False), ("spectral", False, True), ("none", False, False)]
    for norm, has_bn, has_sn in kinds:
        d = DCGANDiscriminator(in_channels=2, width=8, norm=norm)
        assert d(torch.randn(3, 2, 28, 28)).shape == (3,)
        mods = list(d.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in mods) == has_bn
        assert any(isinstance(m, SpectralNorm) for m in mods) == has_sn
    assert sum(p.numel() for p in DCGANGenerator().parameters()) < 300_000
    with pytest.raises(ValueError, match="unknown norm"):
        DCGANDiscriminator(norm="layer")


STEPS = 300


def _ring_gan(seed: int, loss: str, n_critic: int, pack_m: int):
    """A small GAN on the benchmark ring (8 modes, radius 2, std 0.02) for STEPS steps."""
    torch.manual_seed(seed)
    model = gan(MLPGenerator(z_dim=4, hidden=32), MLPDiscriminator(in_dim=2 * pack_m, hidden=32))
    ring, _ = gaussian_mixture_2d(2000, 8, np.random.default_rng(seed), radius=2.0, std=0.02)
    res = train_gan(
        model,
        torch.as_tensor(ring, dtype=torch.float32),
        STEPS,
        z_dim=4,
        rng=np.random.default_rng(seed),
        noise=torch.Generator().manual_seed(seed),
        loss=loss,
        n_critic=n_critic,
        pack=pack_m,
        batch_size=32,
        lr=1e-3,
    )
    return model, res


@pytest.mark.parametrize(
    "loss, n_critic, pack_m",
    [("nonsaturating", 1, 1), ("minimax", 1, 2), ("wgan-gp", 2, 2)],
)
def test_train_gan_runs_through_fit_and_repeats_itself(loss, n_critic, pack_m, monkeypatch):
    calls = []

    def spy(model, optimizers, losses, batches, steps, **options):
        calls.append((optimizers, losses, options))
        return fit(model, optimizers, losses, batches, steps, **options)

    monkeypatch.setattr(gan_train, "fit", spy)
    model, res = _ring_gan(0, loss, n_critic, pack_m)
    ((optimizers, losses, options),) = calls
    # n_critic updates of D's optimizer, then G's, each with its own loss; z from `noise`
    assert len(optimizers) == len(losses) == n_critic + 1
    assert all(o is optimizers[0] for o in optimizers[:-1]) and optimizers[-1] is not optimizers[0]
    assert isinstance(options["noise"], torch.Generator)

    assert res.losses.shape == (STEPS, n_critic + 1) and not res.diverged
    assert np.isfinite(res.losses).all()
    d_losses, g_losses = split_losses(res, n_critic)
    assert d_losses.shape == (STEPS, n_critic) and g_losses.shape == (STEPS,)
    again, res2 = _ring_gan(0, loss, n_critic, pack_m)
    np.testing.assert_array_equal(res.losses, res2.losses)  # same seed, same numbers
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    _, other = _ring_gan(1, loss, n_critic, pack_m)
    assert not np.array_equal(res.losses, other.losses)


def test_critic_batches_give_each_critic_update_its_own_minibatch():
    data = torch.arange(40.0).view(20, 2)
    batches = list(critic_batches(data, 5, 2, np.random.default_rng(0), n_critic=2))
    assert len(batches) == 2 and batches[0].shape == (5, 2, 2)  # (B, n_critic, d)
    rows = torch.cat([b[:, i] for b in batches for i in range(2)])
    # 4 minibatches of 5 rows: one epoch of the 20 rows, each row once
    assert sorted(rows[:, 0].tolist()) == data[:, 0].tolist()
    members = next(critic_batches(data, 5, 1, [np.random.default_rng(r) for r in range(3)]))
    assert members.shape == (3, 5, 1, 2)  # (R, B, n_critic, d)


def test_train_gan_trains_an_ensemble():
    torch.manual_seed(15)
    ens = gan(
        Ensemble([MLPGenerator(z_dim=4, hidden=16) for _ in range(3)]),
        Ensemble([MLPDiscriminator(hidden=16) for _ in range(3)]),
    )
    data = torch.randn(256, 2)
    rngs = [np.random.default_rng(r) for r in range(3)]
    res = train_gan(
        ens,
        data,
        20,
        z_dim=4,
        rng=rngs,
        noise=torch.Generator().manual_seed(0),
        loss="wgan-gp",
        n_critic=2,
        batch_size=16,
    )
    assert res.losses.shape == (20, 3, 3) and np.isfinite(res.losses).all()
    assert len({tuple(res.losses[-1, :, r]) for r in range(3)}) == 3  # members differ
    assert sample(ens["G"], 10, 4, torch.Generator().manual_seed(1)).shape == (3, 10, 2)
    sn = gan(ens["G"], Ensemble([MLPDiscriminator(hidden=16, spectral=True) for _ in range(3)]))
    with pytest.raises(ValueError, match="cannot train in an ensemble"):
        train_gan(sn, data, 1, z_dim=4, rng=rngs, noise=torch.Generator())
    for wrong in (rngs[0], rngs[:2]):
        with pytest.raises(ValueError, match="one NumPy generator per member"):
            train_gan(ens, data, 1, z_dim=4, rng=wrong, noise=torch.Generator())


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_train_gan_trains_a_dcgan(norm):
    torch.manual_seed(16)
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    dc = gan(DCGANGenerator(z_dim=8, width=4), DCGANDiscriminator(width=4, norm=norm))
    res = train_gan(
        dc, images, 3, z_dim=8, rng=np.random.default_rng(0), noise=torch.Generator(), batch_size=16
    )
    assert res.losses.shape == (3, 2) and np.isfinite(res.losses).all()
    dc.train()
    assert sample(dc["G"], 5, 8).shape == (5, 1, 28, 28)
    assert dc["G"].training  # sample switches to evaluation mode and back


# --- helpers of the labs ---------------------------------------------------------------------


def test_benchmark_mixtures_sample_from_the_cores_generators():
    from mlatlas.generative.gan import MIXTURES

    ring, grid = MIXTURES["ring"], MIXTURES["grid"]
    assert (ring.modes, ring.std, grid.modes, grid.std) == (8, 0.02, 25, 0.05)
    x = ring.sample(300, np.random.default_rng(3))
    x0, _ = gaussian_mixture_2d(300, 8, np.random.default_rng(3), radius=2.0, std=0.02)
    np.testing.assert_array_equal(x, x0.astype(np.float32))
    y = grid.sample(300, np.random.default_rng(4))
    y0, _ = gaussian_grid_2d(300, np.random.default_rng(4))
    np.testing.assert_array_equal(y, y0.astype(np.float32))
    np.testing.assert_array_equal(grid.centres, grid_centres(5, 2.0))
    assert mode_coverage(y, grid.centres, grid.std).covered == 25


def test_member_coverage_marks_diverged_and_non_finite_members_as_failures():
    """A diverged generator is NaN (a failure the claim counts), never 0 modes covered."""
    from mlatlas.generative.gan import member_coverage

    centres, std = ring_centres(8, 2.0), 0.02
    rng = np.random.default_rng(5)
    good = np.concatenate([c + std * rng.standard_normal((50, 2)) for c in centres])
    one = centres[2] + std * rng.standard_normal((400, 2))
    nan = good.copy()
    nan[7] = np.nan
    x = np.stack([good, one, good, nan])
    covered, quality = member_coverage(x, centres, std, diverged=[False, False, True, False])
    assert covered[0] == 8 and covered[1] == 1
    assert np.isnan(covered[2:]).all() and np.isnan(quality[2:]).all()
    direct = mode_coverage(one, centres, std)
    assert quality[1] == direct.high_quality
    covered, _ = member_coverage(x[:2], centres, std)  # no divergence record: all judged
    np.testing.assert_array_equal(covered, [8, 1])


def test_a_diverged_seed_is_counted_as_failed_not_dropped():
    """The chain a mode-collapse claim goes through: member_coverage's NaN for a diverged
    member reaches the claim as a failure; the verdict says so instead of deciding on the
    survivors (or, where the claim said beforehand what a failure counts as, uses that)."""
    from mlatlas.core.claims import Experiment, decide_lab
    from mlatlas.generative.gan import member_coverage

    centres, std = ring_centres(8, 2.0), 0.02
    rng = np.random.default_rng(6)
    spread = np.concatenate([c + std * rng.standard_normal((40, 2)) for c in centres])
    x = np.stack([spread] * 7)
    diverged = np.array([False, False, False, True, False, False, False])
    covered, _ = member_coverage(x, centres, std, diverged)
    plain = Experiment("covers more than 7.5", "i", "modes", ">", 7.5)
    counted = Experiment("covers more than 7.5", "i", "modes", ">", 7.5, on_failure=0.0)
    for sid, c in enumerate(covered):
        plain.add(sid, c)
        counted.add(sid, c)
    a, b = decide_lab([plain, counted])
    assert a["n_failed"] == 1 and a["failed_ids"] == [3] and a["verdict"] == "inconclusive"
    assert "failed" in a["reason"]
    assert b["samples"][""]["3"] != b["samples"][""]["3"]  # the NaN is kept in the record
    assert b["n"] == 7 and b["n_failed"] == 0 and b["estimate"] == pytest.approx(6 * 8 / 7)


def test_generator_gradient_norms_match_each_member_and_the_closed_form():
    from mlatlas.generative.gan import generator_gradient_norms

    torch.manual_seed(17)
    gs = [MLPGenerator(z_dim=4, hidden=8).double() for _ in range(3)]
    ds = [MLPDiscriminator(hidden=8).double() for _ in range(3)]
    ens = gan(Ensemble(copy.deepcopy(gs)), Ensemble(copy.deepcopy(ds)))
    z = torch.randn(3, 10, 4, dtype=torch.float64)
    norms = generator_gradient_norms(ens, z)
    assert set(norms) == {"minimax", "nonsaturating"} and norms["minimax"].shape == (3,)
    for r in range(3):
        alone = generator_gradient_norms(gan(gs[r], ds[r]), z[r])
        for name in norms:
            _assert_same(norms[name][r], alone[name])
    # one fake: both gradients are the same vector times -sigma(l) and -(1 - sigma(l))
    single = gan(gs[0], ds[0])
    z1 = z[0, :1]
    l = ds[0](gs[0](z1)).detach()
    one = generator_gradient_norms(single, z1)
    ratio = float(one["minimax"] / one["nonsaturating"])
    assert ratio == pytest.approx(float(torch.exp(l)), rel=1e-10)  # sigma / (1 - sigma)


def test_mlp_gan_ensemble_starts_every_arm_from_the_same_generator():
    from mlatlas.generative.gan import mlp_gan_ensemble

    def seed(r, key):
        torch.manual_seed(hash((r, key)) % 2**31)

    plain = mlp_gan_ensemble(3, seed, z_dim=8, hidden=16)
    packed = mlp_gan_ensemble(3, seed, z_dim=8, hidden=16, pack=2)
    for p, q in zip(plain["G"].stacked, packed["G"].stacked, strict=True):
        assert torch.equal(p, q)
    assert plain["D"].stacked[0].shape[-1] == 2 and packed["D"].stacked[0].shape[-1] == 4
    assert not torch.equal(plain["G"].stacked[0][0], plain["G"].stacked[0][1])  # own inits


def test_instability_counts_mode_flips_between_evaluations():
    from mlatlas.generative.gan.labs.instability import changed_modes

    k = 4
    settled = np.array([5.0, 5, 5, 5])
    hop_a, hop_b = np.array([9.0, 0, 0, 0]), np.array([0.0, 9, 0, 0])  # two flips per move
    evals = [
        (1, np.stack([settled, hop_a, settled])),
        (2, np.stack([settled, hop_b, np.full(k, np.nan)])),
        (3, np.stack([settled, hop_a, settled])),
    ]
    np.testing.assert_array_equal(changed_modes(evals)[:2], [0.0, 2.0])
    assert np.isnan(changed_modes(evals)[2])  # a run with NaN counts has no flip count
    assert np.isnan(changed_modes(evals[:1])).all()  # one evaluation: nothing to compare


def test_dcgan_lab_maps_images_to_tanh_range_and_back():
    from mlatlas.generative.gan.labs.dcgan_mnist import as_28, judged

    x = torch.rand(5, 64)
    img = as_28(x, 8)
    assert img.shape == (5, 1, 28, 28) and img.min() >= -1 and img.max() <= 1
    assert judged(img, 8).shape == (5, 64)
    flat = torch.linspace(0, 1, 4)[:, None].expand(4, 64)  # constant images survive exactly
    torch.testing.assert_close(judged(as_28(flat, 8), 8), flat, atol=1e-6, rtol=0)
    assert judged(torch.full((2, 1, 28, 28), 3.0), 8).max() == 1  # clamped to [0, 1]
    m = torch.rand(3, 784)
    torch.testing.assert_close(judged(as_28(m, 28), 28).flatten(1), m, atol=1e-6, rtol=0)


def test_saturation_lab_measures_the_distance_to_the_nearest_mode():
    from mlatlas.generative.gan.labs.saturation import nearest_distance

    centres = ring_centres(8, 2.0)
    x = torch.tensor([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 2.5], [-2.0, 0.0]]])
    np.testing.assert_allclose(nearest_distance(x, centres), [1.0, 0.25])
