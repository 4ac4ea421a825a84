"""Hand-written activations and derivatives equal torch.nn.functional (float64, rtol 1e-10)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlatlas.foundations.activations import ACTIVATIONS, activate, get_activation, mlp

EDGES = torch.tensor(
    [
        -1e3,
        -100.0,
        -50.0,
        -20.5,
        -20.0,
        -5.0,
        -1.0,
        -1e-8,
        0.0,
        1e-8,
        1.0,
        5.0,
        19.99,
        20.0,
        20.01,
        50.0,
        100.0,
        1e3,
    ],
    dtype=torch.float64,
)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_values_and_gradients_equal_torch(name):
    act = get_activation(name)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(2000, generator=gen, dtype=torch.float64) * 4, EDGES])
    ours = x.clone().requires_grad_()
    ref = x.clone().requires_grad_()
    y, y_ref = activate(name, ours), act.reference(ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    w = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_finite_differences(name):
    act = get_activation(name)
    x = torch.linspace(-6, 6, 601, dtype=torch.float64)
    x = x[(x.abs() > 1e-3)]  # skip the kink of relu-type functions at 0
    eps = 1e-6
    numeric = (act.f(x + eps) - act.f(x - eps)) / (2 * eps)
    torch.testing.assert_close(act.df(x), numeric, rtol=1e-6, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    name=st.sampled_from(sorted(ACTIVATIONS)),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
    seed=st.integers(0, 10_000),
)
def test_float32_any_shape(shape, name, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen) * scale).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = activate(name, x), get_activation(name).reference(x_ref)
    assert y.dtype == torch.float32 and y.shape == x.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    y_ref.sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_known_bounds():
    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    assert abs(get_activation("sigmoid").df(x).max().item() - 0.25) < 1e-12
    assert abs(get_activation("tanh").df(x).max().item() - 1.0) < 1e-12
    assert get_activation("swish") is get_activation("silu")
    with pytest.raises(KeyError, match="known: sigmoid"):
        get_activation("nope")


def test_mlp_ours_equals_torch_kernel():
    torch.manual_seed(0)
    a = mlp([5, 8, 3], "gelu", ours=True).double()
    b = mlp([5, 8, 3], "gelu", ours=False).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(a(x), b(x))
