"""Topic 10: augmentations equal torch's resampling and are exact at zero strength; rotations
equal torch.rot90; MAE masks and restores the right patches and scores only the hidden ones;
alignment and uniformity equal their double-loop definitions; the linear probe is
scikit-learn's logistic regression; the ensemble losses equal the single-model ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from mlatlas.core.ensemble import Ensemble
from mlatlas.foundations.losses.functions import nt_xent
from mlatlas.paradigms.selfsupervised import (
    MAE,
    Augment,
    ViTEncoder,
    affine_theta,
    alignment,
    compose,
    crop_theta,
    cutout,
    fit_probe,
    gaussian_noise,
    identity_theta,
    masked_mse,
    normalized_patches,
    random_masking,
    rotate90,
    take,
    uniformity,
    unshuffle,
    warp,
)
from mlatlas.paradigms.selfsupervised.train import build, pretext_loss, simclr_ensemble_loss

TOL = {"rtol": 1e-9, "atol": 1e-10}  # float64 comparisons against a reference


def _grid_sample(x, theta):
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, "bilinear", "border", align_corners=False)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(1, 3),
    c=st.integers(1, 2),
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    seed=st.integers(0, 10_000),
)
def test_warp_equals_affine_grid_and_grid_sample(b, c, h, w, seed):
    """Values and gradients (image and map) equal torch's bilinear border resampling."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    theta = identity_theta(b, torch.float64) + 0.4 * torch.randn(b, 2, 3, generator=g).double()
    xa, ta = x.clone().requires_grad_(), theta.clone().requires_grad_()
    xb, tb = x.clone().requires_grad_(), theta.clone().requires_grad_()
    y, y_ref = warp(xa, ta), _grid_sample(xb, tb)
    torch.testing.assert_close(y, y_ref, **TOL)
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (y * v).sum().backward()
    (y_ref * v).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    torch.testing.assert_close(ta.grad, tb.grad, rtol=1e-8, atol=1e-9)


def test_random_maps_equal_grid_sample_and_compose_is_one_warp():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, 28, 28, dtype=torch.float64)
    outer, inner = crop_theta(6, g).double(), affine_theta(6, g).double()
    both = compose(outer, inner)
    torch.testing.assert_close(warp(x, both), _grid_sample(x, both), **TOL)
    # composition: reading at outer(inner(u)) is applying `inner`'s map to outer's grid
    u = torch.randn(6, 2, 1, dtype=torch.float64)
    step = inner[:, :, :2] @ u + inner[:, :, 2:]
    torch.testing.assert_close(
        both[:, :, :2] @ u + both[:, :, 2:], outer[:, :, :2] @ step + outer[:, :, 2:], **TOL
    )


def test_known_maps_by_hand():
    """A quarter turn is torch.rot90; a shift of t = 2 * 2 / W moves the image 2 pixels."""
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    quarter = torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]], dtype=torch.float64).expand(
        2, 2, 3
    )
    # output (i, j) reads input at (row j, column W-1-i): rot90 by one turn, counter-clockwise
    torch.testing.assert_close(warp(x, quarter), torch.rot90(x, 1, (-2, -1)), rtol=0, atol=1e-12)
    shift = identity_theta(2, torch.float64)
    shift[:, 0, 2] = 2 * 2 / 8  # read 2 pixels to the right: content moves 2 pixels left
    y = warp(x, shift)
    torch.testing.assert_close(y[..., :6], x[..., 2:], rtol=0, atol=1e-12)
    torch.testing.assert_close(y[..., 6:], x[..., 7:].expand(-1, -1, -1, 2), rtol=0, atol=1e-12)


def test_zero_strength_is_the_identity_exactly():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(warp(x, crop_theta(5, g, scale=(1.0, 1.0), ratio=(1.0, 1.0))), x)
    assert torch.equal(warp(x, affine_theta(5, g, 0.0, 0.0, (1.0, 1.0), 0.0)), x)
    assert torch.equal(gaussian_noise(x, g, 0.0), x)
    assert torch.equal(cutout(x, g, 0), x)
    zero = Augment(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        degrees=0.0,
        translate=0.0,
        zoom=(1.0, 1.0),
        shear=0.0,
        sigma=0.0,
        cutout=0,
    )
    assert torch.equal(zero(x, g), x)


def test_augment_shapes_ranges_and_per_sample_randomness():
    x = torch.rand(1, 1, 28, 28).expand(8, -1, -1, -1).contiguous()  # 8 copies of one image
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    geo = Augment(drop=("noise", "cutout"))
    y = geo(x, g1)
    assert y.shape == x.shape
    # bilinear resampling is a convex combination of input pixels
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
    assert all(not torch.equal(y[0], y[i]) for i in range(1, 8))  # one draw per image
    assert torch.equal(geo(x, g2), y)  # the generator decides everything
    k = 6
    out = cutout(x, torch.Generator().manual_seed(0), k, fill=torch.full((8,), -5.0))
    filled = (out == -5.0).flatten(1).sum(1)
    assert (filled <= k * k).all() and (filled > 0).all()
    assert torch.equal(out[out != -5.0], x[out != -5.0])  # nothing else changes
    with pytest.raises(ValueError):
        Augment(drop=("color",))


def test_rotate90_equals_torch_rot90_per_image():
    x = torch.randn(8, 2, 5, 5)
    k = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    expected = torch.stack([torch.rot90(x[i], int(k[i]), (-2, -1)) for i in range(8)])
    assert torch.equal(rotate90(x, k), expected)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 4),
    length=st.integers(2, 20),
    ratio=st.floats(0.0, 0.95),
    seed=st.integers(0, 10_000),
)
def test_masking_keeps_the_right_count_and_unshuffle_restores_order(b, length, ratio, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(b, length, generator=g)
    ids_keep, ids_restore, mask = random_masking(noise, ratio)
    keep = int(length * (1 - ratio))
    assert ids_keep.shape == (b, keep)
    assert (mask.sum(1) == length - keep).all()
    # the kept indices are exactly the unmasked ones, and they are the smallest noise values
    for i in range(b):
        assert set(ids_keep[i].tolist()) == set(torch.nonzero(mask[i] == 0).flatten().tolist())
        assert set(ids_keep[i].tolist()) == set(noise[i].argsort()[:keep].tolist())
    tokens = torch.randn(b, length, 3, generator=g)
    shuffled = take(tokens, noise.argsort(1))
    assert torch.equal(unshuffle(shuffled, ids_restore), tokens)


def test_mae_loss_counts_only_masked_patches():
    torch.manual_seed(0)
    model = MAE(ViTEncoder(d=16, heads=2, layers=1), dec_d=8, dec_heads=2).double()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    noise = torch.rand(3, 16, dtype=torch.float64)
    pred, target, mask = model.reconstruct(x, noise)
    pred = pred.detach().requires_grad_()
    loss = masked_mse(pred, target, mask)
    loss.backward()
    visible = mask == 0
    assert (pred.grad[visible] == 0).all() and (pred.grad[~visible].abs() > 0).any()
    hand = (
        sum(
            ((pred[i, j] - target[i, j]) ** 2).mean()
            for i in range(3)
            for j in range(16)
            if mask[i, j] == 1
        )
        / mask.sum()
    )
    torch.testing.assert_close(loss, hand, **TOL)
    # changing the target of a visible patch leaves the loss unchanged
    t2 = target.clone()
    t2[visible] += 1.0
    torch.testing.assert_close(masked_mse(pred, t2, mask), loss, rtol=0, atol=0)
    assert torch.isfinite(model(x, noise)) and model(x, noise).dim() == 0


def test_mae_encoder_positions_match_the_vit():
    """With nothing masked and the identity order, the MAE encoder is topic 7's ViT encoder."""
    torch.manual_seed(1)
    enc = ViTEncoder(d=16, heads=2, layers=2).double()
    model = MAE(enc, mask_ratio=0.0).double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    ids = torch.arange(16).expand(2, 16)
    torch.testing.assert_close(model.encode_visible(x, ids).mean(1), enc(x), **TOL)
    assert torch.equal(model(x, features=True), enc(x))


def test_normalized_patches_closed_form():
    p = torch.randn(2, 5, 49, dtype=torch.float64)
    q = normalized_patches(p, eps=0.0)
    torch.testing.assert_close(q.mean(-1), torch.zeros(2, 5, dtype=torch.float64), **TOL)
    torch.testing.assert_close(q.var(-1), torch.ones(2, 5, dtype=torch.float64), **TOL)


def _align_loop(z1, z2, alpha):
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    return sum((z1[i] - z2[i]).norm() ** alpha for i in range(len(z1))) / len(z1)


def _uniform_loop(z, t):
    z = F.normalize(z, dim=-1)
    terms = [
        torch.exp(-t * (z[i] - z[j]).pow(2).sum())
        for i in range(len(z))
        for j in range(i + 1, len(z))
    ]
    return torch.log(sum(terms) / len(terms))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 9),
    d=st.integers(2, 6),  # d = 1: the "sphere" is two points, and features coincide exactly
    alpha=st.sampled_from([1.0, 2.0, 3.0]),
    t=st.sampled_from([0.5, 2.0]),
    seed=st.integers(0, 10_000),
)
def test_alignment_and_uniformity_equal_double_loops(n, d, alpha, t, seed):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    for ours, ref, inputs in (
        (lambda: alignment(z1, z2, alpha), lambda: _align_loop(z1, z2, alpha), (z1, z2)),
        (lambda: uniformity(z1, t), lambda: _uniform_loop(z1, t), (z1,)),
    ):
        a, r = ours(), ref()
        torch.testing.assert_close(a, r, **TOL)
        ga = torch.autograd.grad(a, inputs)
        gr = torch.autograd.grad(r, inputs)
        for u, v in zip(ga, gr, strict=True):
            torch.testing.assert_close(u, v, rtol=1e-8, atol=1e-9)


def test_uniformity_closed_forms():
    # two antipodal points: ||u - v||^2 = 4, so log exp(-2 * 4) = -8
    assert math.isclose(float(uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))), -8.0)
    # identical points: the distribution has collapsed, the loss is at its maximum, 0
    assert float(uniformity(torch.ones(5, 3))) == pytest.approx(0.0, abs=1e-6)
    # batched (R, N, d) equals one call per member
    z = torch.randn(3, 7, 4, dtype=torch.float64)
    torch.testing.assert_close(uniformity(z), torch.stack([uniformity(m) for m in z]), **TOL)


def test_probe_equals_sklearn_logistic_regression():
    rng = np.random.default_rng(0)
    n, d, c, lam = 300, 5, 3, 1e-2
    h = rng.normal(size=(n, d))
    y = rng.integers(0, c, n)
    h[np.arange(n), y % d] += 1.5  # some signal
    w, b = fit_probe(torch.from_numpy(h)[None], torch.from_numpy(y), c, lam, max_iter=500)
    ref = LogisticRegression(C=1 / (lam * n), tol=1e-12, max_iter=10_000).fit(h, y)
    # sklearn's multinomial solution is centred over classes; ours is invariant to that shift
    # in b only (W is pinned by the penalty), so compare W and centred b
    np.testing.assert_allclose(w[0].T.numpy(), ref.coef_, rtol=1e-4, atol=1e-5)
    bc = b[0].numpy() - b[0].numpy().mean()
    np.testing.assert_allclose(bc, ref.intercept_ - ref.intercept_.mean(), rtol=1e-4, atol=1e-5)
    # two representations probed at once give the same answers as one at a time
    h2 = torch.from_numpy(np.stack([h, rng.normal(size=(n, d))]))
    w2, _ = fit_probe(h2, torch.from_numpy(y), c, lam, max_iter=500)
    w1, _ = fit_probe(h2[1:], torch.from_numpy(y), c, lam, max_iter=500)
    torch.testing.assert_close(w2[1:], w1, rtol=1e-5, atol=1e-6)


def test_ensemble_losses_equal_single_models():
    """The batched losses the labs train with equal each member's own loss (values, grads)."""
    vit = {"d": 16, "heads": 2, "layers": 1}
    x = torch.randn(2, 8, 1, 28, 28)
    for kind in ("simclr", "rotation", "mae", "supervised"):
        torch.manual_seed(0)
        models = [build(kind, vit) for _ in range(2)]
        ens = Ensemble(models)
        if kind == "simclr":
            taus = [0.2, 0.7]
            got = simclr_ensemble_loss(taus)(ens, x)
            want = [nt_xent(m(x[r, :4]), m(x[r, 4:]), taus[r]) for r, m in enumerate(models)]
        elif kind == "mae":
            noise = torch.rand(2, 8, 16)
            got = pretext_loss(kind)(ens, (x, noise))
            want = [m(x[r], noise[r]) for r, m in enumerate(models)]
        else:
            target = torch.randint(0, 4, (8,))
            got = pretext_loss(kind)(ens, (x, target))
            want = [F.cross_entropy(m(x[r]), target) for r, m in enumerate(models)]
        torch.testing.assert_close(got, torch.stack(want), rtol=1e-5, atol=1e-6)
        got.sum().backward()
        torch.stack(want).sum().backward()
        first = next(iter(ens.stacked))
        ref = next(iter(models[1].parameters())).grad
        torch.testing.assert_close(first.grad[1], ref, rtol=1e-4, atol=1e-6)


# -- the SimCLR encoders pretext_probe and label_efficiency share (core.shared) -----------
def test_label_efficiency_gives_the_same_claims_with_trained_or_loaded_simclr(tmp_path):
    """pretext_probe then label_efficiency into one run tree (label_efficiency loads the
    SimCLR encoders pretext_probe trained) against label_efficiency alone: the same claims."""
    from mlatlas.core.runner import get_lab, run_lab

    shared_tree, alone = tmp_path / "shared", tmp_path / "alone"
    probe = get_lab("selfsupervised", "pretext_probe")
    first = run_lab(probe, scale="smoke", seed=0, out=shared_tree)
    effic = get_lab("selfsupervised", "label_efficiency")
    loaded = run_lab(effic, scale="smoke", seed=0, out=shared_tree)
    trained = run_lab(effic, scale="smoke", seed=0, out=alone)
    assert first.ok and loaded.ok and trained.ok, (first.error, loaded.error, trained.error)
    assert first.metrics["shared_models"]["status"] == "trained"
    assert loaded.metrics["shared_models"]["status"] == "loaded"
    assert trained.metrics["shared_models"]["status"] == "trained"
    assert loaded.metrics["shared_models"]["key"] == first.metrics["shared_models"]["key"]
    assert any("share their SimCLR encoders" in n and "loaded" in n for n in loaded.notes)
    assert loaded.claims == trained.claims
    assert loaded.tables == trained.tables
    entry = shared_tree / "selfsupervised" / "_shared"
    assert {p.suffix for p in entry.glob("simclr-*")} == {".safetensors", ".json"}


def test_a_shared_key_with_tuples_loads_back(tmp_path):
    """A key holding tuples (an Augment's fields) must equal the key its JSON reads back,
    or the entry would be trained again every time."""
    import types

    from mlatlas.core import shared
    from mlatlas.core.train import FitResult

    ens = Ensemble([torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)])
    calls = []

    def train():
        calls.append(1)
        res = FitResult(
            np.zeros((3, 2)), np.zeros(2, bool), 3, False, np.full(2, -1), np.zeros(2), []
        )
        return ens, res

    run = tmp_path / "out" / "t" / "l" / "r1"
    ctx = types.SimpleNamespace(
        dir=run,
        spec=types.SimpleNamespace(topic="t", name="l"),
        writes=True,
        journal=None,
        notes=[],
        metrics={},
    )
    ctx.note = ctx.notes.append
    ctx.metric = lambda k, v: ctx.metrics.__setitem__(k, v)
    key = {"replicates": [[0, 1], [1, 2]], "crop": (0.35, 1.0)}
    for _ in range(2):
        shared.shared_ensemble(ctx, name="m", key=key, ens=ens, train=train, sharers="Two labs")
    assert len(calls) == 1 and ctx.metrics["shared_models"]["status"] == "loaded"
