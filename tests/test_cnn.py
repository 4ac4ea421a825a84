"""im2col convolution and pooling equal torch (values and gradients, float64, 1e-10); the
receptive-field calculator equals the empirical field, and the gradient-support fields
measured on a VGG's own weights (the lab's checks fail on a wrong formula, on 1x1 convolutions
that never widen the field, and on NaN weights); models run with either kernel; the
topic's data and training helpers (shift, equal-size MLP, batched ensemble = separate runs);
the fast MNIST recipe (FastCNN shapes, its schedule == torch's OneCycleLR, it learns)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlatlas.architectures.cnn.conv import avg_pool2d, conv2d, max_pool2d, output_size
from mlatlas.architectures.cnn.data import images, shift
from mlatlas.architectures.cnn.fast import (
    FastCNN,
    FastRecipe,
    evaluate_accuracy,
    prepare,
    train_fast,
    validation_split,
)
from mlatlas.architectures.cnn.models import CifarResNet, LeNet5, VGGSmall
from mlatlas.architectures.cnn.receptive import (
    empirical_receptive_field,
    geometry_of,
    gradient_fields,
    largest_mismatch,
    receptive_fields,
    smallest_growth,
)
from mlatlas.architectures.cnn.train import equal_params_mlp, train_classifier, train_ensemble
from mlatlas.core.claims import check_passes
from mlatlas.core.seeding import fixed_rng
from mlatlas.core.train import count_params

TOL = {"rtol": 1e-10, "atol": 1e-10}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 2),
    groups=st.integers(1, 3),
    c_mult=st.integers(1, 2),
    o_mult=st.integers(1, 2),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    size=st.tuples(st.integers(4, 11), st.integers(4, 11)),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_conv2d_equals_torch(
    n, groups, c_mult, o_mult, k, stride, padding, dilation, size, bias, seed
):
    for axis in (0, 1):
        assume(output_size(size[axis], k[axis], stride[axis], padding[axis], dilation[axis]) >= 1)
    g = torch.Generator().manual_seed(seed)
    c, o = groups * c_mult, groups * o_mult
    x = torch.randn(n, c, *size, generator=g, dtype=torch.float64)
    w = torch.randn(o, c_mult, *k, generator=g, dtype=torch.float64)
    b = torch.randn(o, generator=g, dtype=torch.float64) if bias else None
    args = (stride, padding, dilation, groups)
    ins = [t.clone().requires_grad_() for t in (x, w) + ((b,) if bias else ())]
    ref = [t.clone().requires_grad_() for t in (x, w) + ((b,) if bias else ())]
    y = conv2d(ins[0], ins[1], ins[2] if bias else None, *args)
    y_ref = F.conv2d(ref[0], ref[1], ref[2] if bias else None, *args)
    torch.testing.assert_close(y, y_ref, **TOL)
    up = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (y * up).sum().backward()
    (y_ref * up).sum().backward()
    for a, r in zip(ins, ref, strict=True):
        torch.testing.assert_close(a.grad, r.grad, **TOL)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    size=st.integers(4, 12),
    seed=st.integers(0, 10_000),
)
def test_pools_equal_torch(k, stride, padding, size, seed):
    assume(padding <= k // 2)  # torch's rule for pooling
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, size, size, generator=g, dtype=torch.float64)
    for ours, ref in ((max_pool2d, F.max_pool2d), (avg_pool2d, F.avg_pool2d)):
        a, r = x.clone().requires_grad_(), x.clone().requires_grad_()
        y, y_ref = ours(a, k, stride, padding), ref(r, k, stride, padding)
        torch.testing.assert_close(y, y_ref, **TOL)
        y.sum().backward()
        y_ref.sum().backward()
        torch.testing.assert_close(a.grad, r.grad, **TOL)


@settings(max_examples=25, deadline=None)
@given(
    layers=st.lists(
        st.tuples(
            st.sampled_from(["conv", "max", "avg"]),
            st.integers(1, 5),
            st.integers(1, 2),
            st.integers(1, 2),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_receptive_field_calculator_equals_empirical(layers):
    mods, c = [], 1
    for kind, k, s, d in layers:
        if kind == "conv":
            mods.append(torch.nn.Conv2d(c, 2, k, stride=s, padding=(k - 1) * d // 2, dilation=d))
            c = 2
        else:
            pool = torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d
            mods.append(pool(k, stride=s, padding=k // 2))
    model = torch.nn.Sequential(*mods)
    field = receptive_fields(geometry_of(model))[-1]
    size = 4 * field.size + 8 * field.jump + 16  # large enough that the field is not clipped
    assert empirical_receptive_field(model, size) == (field.size, field.size)


def _vgg_layers(model: VGGSmall) -> list[torch.nn.Module]:
    return [m for stage in model.stages for m in stage]


def test_gradient_fields_of_a_vgg_equal_the_calculator_and_grow():
    """The two receptive-field checks of the hierarchical_features lab pass on a VGG."""
    torch.manual_seed(0)
    model = VGGSmall((8, 8, 8))
    canvases = torch.rand(16, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    measured = gradient_fields(_vgg_layers(model), canvases)
    fields = [f.size for f in receptive_fields(geometry_of(model))]
    assert fields == [3, 5, 6, 10, 14, 16, 24, 32, 36]
    assert check_passes(largest_mismatch(measured, fields), "<=", 0)
    assert check_passes(smallest_growth([h for h, _ in measured]), ">", 0)


def test_receptive_field_checks_fail_on_a_wrong_formula_and_a_net_that_does_not_grow():
    torch.manual_seed(0)
    model = VGGSmall((8, 8, 8))
    canvases = torch.rand(16, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    measured = gradient_fields(_vgg_layers(model), canvases)
    # a calculator that forgets the jump: r_out = r_in + (k - 1) d
    wrong, size = [], 1
    for g in geometry_of(model):
        size += (g.kernel - 1) * g.dilation
        wrong.append(size)
    assert not check_passes(largest_mismatch(measured, wrong), "<=", 0)
    # 1x1 convolutions never widen the field: the growth check fails on the measurement
    flat = [torch.nn.Conv2d(1, 4, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1)]
    still = gradient_fields(flat, canvases)
    assert still == [(1.0, 1.0), (1.0, 1.0)]
    assert not check_passes(smallest_growth([h for h, _ in still]), ">", 0)
    assert check_passes(largest_mismatch(still, [1, 1]), "<=", 0)  # the formula agrees
    # a diverged net (NaN weights) fails both
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.stages[0][0].weight.fill_(float("nan"))
    nan = gradient_fields(_vgg_layers(broken), canvases)
    assert not check_passes(
        largest_mismatch(nan, [f.size for f in receptive_fields(geometry_of(model))]), "<=", 0
    )
    assert not check_passes(smallest_growth([h for h, _ in nan]), ">", 0)


def test_gradient_fields_refuse_a_canvas_that_clips_the_field():
    torch.manual_seed(0)
    model = VGGSmall((8, 8, 8))  # its last field is 36 px: a 24 px canvas clips it
    canvases = torch.rand(16, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="canvas border"):
        gradient_fields(_vgg_layers(model), canvases)


def test_models_same_output_with_either_kernel():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    for make in (LeNet5, VGGSmall, lambda ours: CifarResNet(1, ours=ours)):
        a = make(ours=True).double().eval()
        b = make(ours=False).double().eval()
        b.load_state_dict(a.state_dict())
        torch.testing.assert_close(a(x), b(x), **TOL)
    assert CifarResNet(3).depth == 20 and CifarResNet(9).depth == 56


def test_shift_moves_pixels_and_fills_with_background():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float64).reshape(2, 1, 6, 6)
    y = shift(x, 2, -1)
    torch.testing.assert_close(y[..., 2:, :5], x[..., :4, 1:])
    assert (y[..., :2, :] == x.min()).all() and (y[..., :, 5:] == x.min()).all()
    torch.testing.assert_close(shift(y, -2, 1)[..., 2:4, 1:5], x[..., 2:4, 1:5])


def test_equal_params_mlp_matches_lenet():
    target = count_params(LeNet5())
    assert abs(count_params(equal_params_mlp(target, 10)) - target) / target < 0.01


def test_ensemble_training_equals_separate_runs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(equal_params_mlp(2000, 10))
    copies = [copy.deepcopy(m) for m in models]
    rngs = [np.random.default_rng(s) for s in range(3)]
    ens, fit = train_ensemble(models, x, y, 12, 16, rngs, lr=1e-2)
    assert fit.losses.shape == (12, 3)
    for r, m in enumerate(copies):
        res = train_classifier(m, x, y, 12, 16, np.random.default_rng(r), lr=1e-2)
        np.testing.assert_allclose(res.losses, fit.losses[:, r], rtol=1e-4, atol=1e-6)
        for a, b in zip(m.parameters(), ens.member(r).parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fast_cnn_shapes_in_every_format():
    torch.manual_seed(0)
    x = torch.randn(5, 1, 28, 28)
    for stem, first in (("stride", ["Conv2d", "BatchNorm2d"]), ("pool", ["Conv2d", "MaxPool2d"])):
        for recipe in (FastRecipe(), FastRecipe(channels_last=True, bf16=True)):
            model = prepare(FastCNN((8, 16, 32), stem=stem), recipe)
            assert [m.__class__.__name__ for m in model.features[:2]] == first
            assert model.features[0].stride == ((2, 2) if stem == "stride" else (1, 1))
            assert model(x).shape == (5, 10)
            assert model.head.in_features == 32 * 3 * 3


def test_validation_split_partitions_the_training_set():
    x = torch.arange(50, dtype=torch.float32).view(50, 1)
    y = torch.arange(50)
    xt, yt, xv, yv = validation_split(x, y, 10, np.random.default_rng(0))
    assert len(xv) == 10 and len(xt) == 40
    assert sorted(yt.tolist() + yv.tolist()) == list(range(50))
    assert (xt[:, 0].long() == yt).all() and (xv[:, 0].long() == yv).all()


def test_train_fast_learns_digits():
    """The recipe through core fit: the loss falls and the digits are learned (a few seconds)."""
    data = images("digits", fixed_rng("test-fast", "digits"))
    recipe = FastRecipe(widths=(8, 16, 32), batch=64, steps=60, lr=0.1)
    torch.manual_seed(0)
    model = prepare(FastCNN(recipe.widths, stem=recipe.stem), recipe)
    res = train_fast(
        model,
        data.x_train,
        data.y_train,
        recipe,
        np.random.default_rng(0),
        evaluate=lambda step: evaluate_accuracy(model, data.x_test, data.y_test, recipe),
        eval_last=True,
    )
    assert res.steps == 60 and not res.diverged.any()
    assert res.losses[-10:].mean() < 0.5 * res.losses[:5].mean()
    assert res.evals[-1][0] == 60 and res.evals[-1][1] > 0.9
