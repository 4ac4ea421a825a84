"""The NumPy autograd engine equals torch.autograd (float64, rtol 1e-6) and finite differences;
its fused ops equal the compositions they replace; float32 graphs stay float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlatlas.foundations.backprop import (
    Tensor,
    cross_entropy,
    linear,
    log_softmax,
    mse,
    no_grad,
    unbroadcast,
)

RTOL, ATOL = 1e-6, 1e-9

UNARY = {
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "neg": lambda x: -x,
    "square": lambda x: x**2,
    "exp_tanh": lambda x: x.tanh().exp(),
    "log1p_sq": lambda x: (x * x + 1.0).log(),
    "scale": lambda x: 0.5 * x - 1.5,
    "rsub": lambda x: 1.0 - x,
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "rdiv": lambda a, b: 2.0 / (a * a + 1.0) + b,
}


@st.composite
def graphs(draw):
    """A random expression over three broadcast-compatible inputs."""
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    shapes = []
    for _ in range(3):
        keep = draw(st.integers(0, len(base)))  # drop leading axes
        dims = [d if draw(st.booleans()) else 1 for d in base[len(base) - keep :]]
        shapes.append(tuple(dims))
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("u"), st.sampled_from(sorted(UNARY)), st.integers(0, 2)),
                st.tuples(
                    st.just("b"),
                    st.sampled_from(sorted(BINARY)),
                    st.integers(0, 2),
                    st.integers(0, 2),
                ),
            ),
            min_size=1,
            max_size=7,
        )
    )
    reduce = draw(st.sampled_from(["sum", "mean", "max", "logsumexp", "index"]))
    seed = draw(st.integers(0, 2**16))
    return shapes, ops, reduce, seed


def _evaluate(inputs, ops, reduce):
    vals = list(inputs)
    for op in ops:
        if op[0] == "u":
            vals.append(UNARY[op[1]](vals[op[2] % len(vals)]))
        else:
            vals.append(BINARY[op[1]](vals[op[2] % len(vals)], vals[op[3] % len(vals)]))
    out = vals[-1] + vals[0] + vals[1] + vals[2]  # every input reaches the output
    if reduce == "sum":
        return out.sum(axis=0) if isinstance(out, Tensor) else out.sum(dim=0)
    if reduce == "mean":
        return out.mean()
    if reduce == "max":
        return out.max(axis=-1) if isinstance(out, Tensor) else out.amax(dim=-1)
    if reduce == "logsumexp":
        return out.logsumexp(axis=-1) if isinstance(out, Tensor) else out.logsumexp(dim=-1)
    return out[..., 0] * 2.0 if out.ndim else out * 2.0


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_random_graphs_match_torch(graph):
    shapes, ops, reduce, seed = graph
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, out_ref = _evaluate(ours, ops, reduce), _evaluate(ref, ops, reduce)
    np.testing.assert_allclose(out.data, out_ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    w = rng.standard_normal(out.shape)
    (out * w).sum().backward()
    (out_ref * torch.tensor(w)).sum().backward()
    for o, r in zip(ours, ref, strict=True):
        np.testing.assert_allclose(o.grad, r.grad.numpy(), rtol=RTOL, atol=ATOL)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(1, 4),
    k=st.integers(1, 4),
    m=st.integers(1, 4),
    a_vec=st.booleans(),
    b_vec=st.booleans(),
    b_batched=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_matmul_matches_torch(batch, n, k, m, a_vec, b_vec, b_batched, seed):
    rng = np.random.default_rng(seed)
    a_shape = (k,) if a_vec else (*batch, n, k)
    b_shape = (k,) if b_vec else ((*batch, k, m) if b_batched else (k, m))
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    ta, tb = Tensor(a, True), Tensor(b, True)
    ra, rb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, ref = ta @ tb, ra @ rb
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=RTOL, atol=ATOL)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ta.grad, ra.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(tb.grad, rb.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_reshape_transpose(axis, keepdims):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5))
    for name in ("sum", "mean", "max"):
        t, r = Tensor(x, True), torch.tensor(x, requires_grad=True)
        ours = getattr(t.transpose(1, 0, 2).reshape(4, 3, 5), name)(axis=axis, keepdims=keepdims)
        rr = r.permute(1, 0, 2).reshape(4, 3, 5)
        dims = tuple(range(3)) if axis is None else axis
        ref = {"sum": rr.sum, "mean": rr.mean, "max": rr.amax}[name](dim=dims, keepdim=keepdims)
        np.testing.assert_allclose(ours.data, ref.detach().numpy(), rtol=RTOL)
        g = rng.standard_normal(ours.shape)
        ours.backward(g)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_max_splits_gradient_among_ties_like_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    t, r = Tensor(x, True), torch.tensor(x, requires_grad=True)
    t.max(axis=1).sum().backward()
    r.amax(dim=1).sum().backward()
    np.testing.assert_allclose(t.grad, r.grad.numpy())


def test_indexing_accumulates_repeated_indices():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3))
    idx = np.array([0, 2, 2, 4, 0, 0])
    t, r = Tensor(x, True), torch.tensor(x, requires_grad=True)
    (t[idx] * t[idx]).sum().backward()
    (r[torch.tensor(idx)] ** 2).sum().backward()
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=RTOL)
    t2, r2 = Tensor(x, True), torch.tensor(x, requires_grad=True)
    t2[1:4, ::2].sum().backward()
    r2[1:4, ::2].sum().backward()
    np.testing.assert_allclose(t2.grad, r2.grad.numpy())


def test_cross_entropy_log_softmax_and_extreme_logits():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 5)) * 30  # large |z|: logsumexp must not overflow
    z[0, 0] = 800.0
    y = rng.integers(0, 5, 6)
    t, r = Tensor(z, True), torch.tensor(z, requires_grad=True)
    loss = cross_entropy(t, y)
    ref = torch.nn.functional.cross_entropy(r, torch.tensor(y))
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=RTOL)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=RTOL, atol=ATOL)
    ls = log_softmax(Tensor(z))
    np.testing.assert_allclose(ls.data, torch.log_softmax(torch.tensor(z), -1).numpy(), rtol=RTOL)


def test_sigmoid_relu_at_extremes_and_zero():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    t, r = Tensor(x, True), torch.tensor(x, requires_grad=True)
    (t.sigmoid() + t.relu()).sum().backward()
    (torch.sigmoid(r) + torch.relu(r)).sum().backward()
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(
        t.sigmoid().data, torch.sigmoid(torch.tensor(x)).numpy(), rtol=RTOL, atol=1e-300
    )


def test_pow_with_tensor_exponent():
    rng = np.random.default_rng(3)
    a, e = rng.uniform(0.5, 2, (3, 4)), rng.uniform(-1, 2, (4,))
    ta, te = Tensor(a, True), Tensor(e, True)
    ra, re_ = torch.tensor(a, requires_grad=True), torch.tensor(e, requires_grad=True)
    (ta**te).sum().backward()
    (ra**re_).sum().backward()
    np.testing.assert_allclose(ta.grad, ra.grad.numpy(), rtol=RTOL)
    np.testing.assert_allclose(te.grad, re_.grad.numpy(), rtol=RTOL)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("seed", range(5))
def test_gradients_match_finite_differences(seed):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.standard_normal((4, 6)), rng.standard_normal((6, 3))
    y = rng.integers(0, 3, 5)
    x = rng.standard_normal((5, 4))

    def loss_of(w1_: np.ndarray) -> float:
        with no_grad():
            return cross_entropy((Tensor(x) @ Tensor(w1_)).tanh() @ Tensor(w2), y).item()

    t = Tensor(w1, True)
    cross_entropy((Tensor(x) @ t).tanh() @ Tensor(w2), y).backward()
    np.testing.assert_allclose(t.grad, _numeric_grad(loss_of, w1), rtol=1e-6, atol=1e-9)


def test_no_grad_records_nothing_and_backward_needs_scalar():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = (x * 2).sum()
    assert not y.requires_grad and y._parents == ()
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()


def test_gradients_accumulate_across_backward_calls_and_retain_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)
    z = (x * 2).retain_grad()
    (z * z).sum().backward()
    np.testing.assert_allclose(z.grad, 2 * z.data)


def test_a_leaf_keeps_its_gradient_array_only_when_nothing_else_holds_it():
    """backward adopts a gradient array as a leaf's .grad instead of copying it when no other
    node, caller or view holds it; every shared case must still get its own array."""
    a, b = (Tensor(np.arange(3.0) + k, requires_grad=True) for k in (1, 2))
    (a + b).sum().backward()  # add hands the same array to both parents
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad += 5  # a caller may write into its gradient: b's must not change
    np.testing.assert_array_equal(b.grad, np.ones(3))

    seed = np.full(3, 2.0)
    c = (a * 1.0).retain_grad()  # the intermediate keeps g; the leaf gets it too
    d = c * 3.0
    d.backward(seed)
    assert not np.shares_memory(a.grad, seed) and not np.shares_memory(c.grad, seed)
    seed[:] = -1  # the caller's array is the caller's
    np.testing.assert_array_equal(c.grad, np.full(3, 6.0))

    w = Tensor(np.ones((2, 3)), requires_grad=True)
    v = w.reshape(6)  # reshape's gradient is a view of its output's gradient
    (v * 2.0).sum().backward()
    assert w.grad.base is None and w.grad.flags.owndata
    np.testing.assert_array_equal(w.grad, np.full((2, 3), 2.0))

    e = Tensor(np.ones((3, 4)), requires_grad=True)
    (e @ Tensor(np.ones((4, 2)))).sum().backward()  # a fresh product: adopted, and correct
    np.testing.assert_array_equal(e.grad, np.full((3, 4), 2.0))


def test_unbroadcast():
    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (3, 1)).shape == (3, 1)
    np.testing.assert_allclose(unbroadcast(g, (3, 1)), np.full((3, 1), 8.0))
    assert unbroadcast(g, ()).shape == ()
    assert unbroadcast(g, (2, 3, 4)) is g  # nothing broadcast: no copy


def _composed_linear(x, w, b):
    y = x @ w.T
    return y if b is None else y + b


@pytest.mark.parametrize("x_shape", [(5, 4), (4,), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_grad", [True, False])
def test_linear_equals_composition_and_torch(x_shape, bias, x_grad):
    """The fused `linear` node gives the outputs and gradients of x @ W.T + b (rtol 1e-12)
    and of torch.nn.functional.linear (rtol 1e-6, float64)."""
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((3, 4)), rng.standard_normal(3)
    results = []
    for fn in (linear, _composed_linear):
        tx, tw = Tensor(x, x_grad), Tensor(w, True)
        tb = Tensor(b, True) if bias else None
        out = fn(tx, tw, tb)
        g = np.random.default_rng(8).standard_normal(out.shape)
        out.backward(g)
        results.append((out.data, tx.grad, tw.grad, tb.grad if bias else None))
    rx, rw = torch.tensor(x, requires_grad=x_grad), torch.tensor(w, requires_grad=True)
    rb = torch.tensor(b, requires_grad=True) if bias else None
    ref = torch.nn.functional.linear(rx, rw, rb)
    ref.backward(torch.tensor(g))
    torch_results = (
        ref.detach().numpy(),
        rx.grad.numpy() if x_grad else None,
        rw.grad.numpy(),
        rb.grad.numpy() if bias else None,
    )
    for fused, composed, reference in zip(*results, torch_results, strict=True):
        if reference is None:
            assert fused is None and composed is None
            continue
        np.testing.assert_allclose(fused, composed, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fused, reference, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("scale", [1.0, -2.5])
def test_fused_cross_entropy_equals_composition_and_torch(scale):
    """One node with the gradient (softmax - onehot) / N equals logsumexp - index - mean
    (rtol 1e-12) and torch's cross-entropy (rtol 1e-6), also for extreme logits and an
    upstream gradient other than 1."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((9, 6)) * 20
    z[0, 0], z[1] = 700.0, -650.0
    y = rng.integers(0, 6, 9)
    t, c = Tensor(z, True), Tensor(z, True)
    fused = cross_entropy(t, y)
    composed = (c.logsumexp(axis=-1) - c[np.arange(9), y]).mean()
    (fused * scale).backward()
    (composed * scale).backward()
    r = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(r, torch.tensor(y))
    (ref * scale).backward()
    np.testing.assert_allclose(fused.item(), composed.item(), rtol=1e-12)
    np.testing.assert_allclose(t.grad, c.grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fused.item(), ref.item(), rtol=RTOL)
    np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_weight_used_transposed_gets_row_major_gradient():
    """x @ W.T hands W a gradient in W's own layout, equal to torch's."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
    tw = Tensor(w, True)
    rw = torch.tensor(w, requires_grad=True)
    (Tensor(x) @ tw.T).tanh().sum().backward()
    (torch.tensor(x) @ rw.T).tanh().sum().backward()
    assert tw.grad.flags.c_contiguous
    np.testing.assert_allclose(tw.grad, rw.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_inputs_that_need_no_gradient_get_none():
    """A backward function skips the gradient of an input that does not require one."""
    rng = np.random.default_rng(6)
    x, w = Tensor(rng.standard_normal((4, 3))), Tensor(rng.standard_normal((3, 2)), True)
    for out in (x @ w, linear(x, w.T), x[:, :2] * w[0], x[:, :2] - w[0], x[:, :2] / w[0]):
        assert out._backward(np.ones(out.shape))[0] is None
        out.sum().backward()
    assert x.grad is None and w.grad is not None


def test_float32_stays_float32_forward_and_backward():
    """Every op keeps float32 (Python numbers must not promote it), and the values agree with
    torch's float32 (rtol 1e-4)."""
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 2.0, (4, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    y = rng.integers(0, 3, 4)

    def graph(a, w, b, lib):
        if lib is torch:
            h = torch.nn.functional.linear(a, w, b)
            ce = torch.nn.functional.cross_entropy(h, torch.tensor(y))
            lsm, amax = torch.log_softmax(h, -1), h.amax(dim=1)
        else:
            h = linear(a, w, b)
            ce, lsm, amax = cross_entropy(h, y), log_softmax(h), h.max(axis=1)
        u = (1.0 - a) * 2 / (a + 1) + 3.0 / a - a**2 + (a * 0.5).exp() + a.log()
        v = u.tanh() + u.sigmoid() + u.relu() + (u @ w.T).sum() / 7
        m = ((u - 0.25) ** 2).mean() if lib is torch else mse(u, 0.25)
        return ce + lsm.sum() + amax.sum() + v.mean() + m + h.logsumexp(-1).sum()

    ta, tw, tb = Tensor(a, True), Tensor(w, True), Tensor(b, True)
    out = graph(ta, tw, tb, None)
    out.backward()
    assert out.data.dtype == np.float32
    for t in (ta, tw, tb):
        assert t.grad.dtype == np.float32
    ra, rw, rb = (torch.tensor(v, requires_grad=True) for v in (a, w, b))
    ref = graph(ra, rw, rb, torch)
    ref.backward()
    np.testing.assert_allclose(out.item(), ref.item(), rtol=1e-4)
    for t, r in zip((ta, tw, tb), (ra, rw, rb), strict=True):
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-4, atol=1e-5)
