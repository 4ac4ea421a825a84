"""Hand-written activations and derivatives equal torch.nn.functional (float64, rtol 1e-10)."""

from __future__ import annotations

import numpy as np
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


def test_our_activations_batch_in_an_ensemble():
    """vmap over our autograd.Function (an Ensemble) gives each member's own outputs and
    gradients, the same as training the members one by one."""
    from mlatlas.core.ensemble import Ensemble

    torch.manual_seed(0)
    models = [mlp([5, 8, 8, 3], name, ours=True).double() for name in ("gelu",) * 3]
    ens = Ensemble(models)
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    out = ens(x, per_member=True)
    out.square().sum().backward()
    for r, m in enumerate(models):
        torch.testing.assert_close(out[r], m(x[r]))
        m(x[r]).square().sum().backward()
        grads = [p.grad for p in m.parameters()]
        for stacked, g in zip(ens.stacked, grads, strict=True):
            torch.testing.assert_close(stacked.grad[r], g)


def test_replicates_pair_arms_and_differ_between_seeds():
    from mlatlas.core.ensemble import make_ensemble, member_batches
    from mlatlas.core.seeding import replicate
    from mlatlas.core.train import batches_for_steps

    def batches(reps, steps):
        return member_batches([batches_for_steps(100, 10, steps, r.rng("batches")) for r in reps])

    reps = [replicate(0, i) for i in range(3)]
    a = list(batches(reps, 12))
    b = list(batches(reps, 12))
    assert len(a) == 12 and a[0].shape == (3, 10)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # same stream per arm
    assert not torch.equal(a[0][0], a[0][1])  # each replicate its own order
    relu = make_ensemble(lambda _: mlp([4, 6, 2], "relu"), 3, lambda r: reps[r].seed_torch("init"))
    tanh = make_ensemble(lambda _: mlp([4, 6, 2], "tanh"), 3, lambda r: reps[r].seed_torch("init"))
    for p, q in zip(relu.stacked, tanh.stacked, strict=True):
        torch.testing.assert_close(p, q)  # same init in both arms
        assert not torch.equal(p[0], p[1])  # different init per replicate
    other_run = next(batches([replicate(1, i) for i in range(3)], 1))
    assert not torch.equal(a[0], other_run)  # --seed changes the batch order


def test_never_active_units_and_diverged_nets():
    from mlatlas.foundations.activations.labs.dead_units import never_active_share

    torch.manual_seed(0)
    model = mlp([3, 4, 2], "relu")
    with torch.no_grad():
        model[0].bias[:2] = -1e6  # two of four units can never be active
    assert never_active_share(model, torch.randn(50, 3)) == (0.5, 0.5)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    share, first = never_active_share(model, torch.randn(50, 3))
    assert share != share and first != first  # NaN: neither dead nor alive


def test_shape_checks_tell_kinked_from_smooth_nets():
    """inductive_bias's ReLU check (bent grid points <= 2 x the kink bound) fails on a smooth
    net, and its smoothness check (kink ratio < 2) fails on a ReLU net."""
    from mlatlas.foundations.activations.labs.inductive_bias import (
        bent_points,
        kink_bound,
        kink_ratio,
    )
    from mlatlas.foundations.backprop.pieces import count_linear_pieces

    grid = np.linspace(-3, 3, 6001)
    assert count_linear_pieces(abs(grid - 0.5), grid) == 2
    assert kink_bound([32, 32]) == 32 + 32 * 33 and kink_bound([4]) == 4
    most = 2 * kink_bound([16, 16])
    torch.manual_seed(0)
    relu, tanh, gelu = (mlp([1, 16, 16, 1], a).double() for a in ("relu", "tanh", "gelu"))
    assert 0 < bent_points(relu, grid) <= most  # kinks, but few
    assert bent_points(tanh, grid) > most and bent_points(gelu, grid) > most  # ReLU check fails
    assert kink_ratio(tanh, grid) < 2 and kink_ratio(gelu, grid) < 2
    assert kink_ratio(relu, grid) > 2  # the smoothness check fails on a kinked net
    with torch.no_grad():
        tanh[0].weight[0, 0] = float("nan")
    assert bent_points(tanh, grid) == len(grid)  # a NaN net fails both checks
    assert not kink_ratio(tanh, grid) < 2


def test_derivative_checks_fail_on_a_wrong_activation():
    """The bound checks of `saturation` differentiate the function they are given: a scaled,
    a shifted, a non-saturating and a NaN-producing activation each fail."""
    from mlatlas.core.claims import check_passes
    from mlatlas.foundations.activations.labs.saturation import derivative_checks

    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    sig = get_activation("sigmoid").f

    def passes(f, peak=0.25):
        checks = derivative_checks("sigmoid", f, peak, "1/4", x)
        return [check_passes(c["value"], c["direction"], c["bound"]) for c in checks]

    assert passes(sig) == [True, True, True]
    assert passes(get_activation("tanh").f, 1.0) == [True, True, True]
    assert passes(lambda z: 2 * sig(z)) == [False, True, True]  # peak 1/2, not 1/4
    assert passes(lambda z: sig(z - 0.01)) == [True, False, True]  # peak at 0.01 = 10 spacings
    assert passes(get_activation("softplus").f) == [False, False, False]  # never saturates
    assert passes(lambda z: sig(z) + 0 * z.sqrt()) == [False, False, False]  # NaN for z < 0


def test_saturated_share_of_a_diverged_net_is_a_failure():
    from mlatlas.foundations.activations.labs.saturation import saturated_share

    torch.manual_seed(0)
    act = get_activation("sigmoid")
    model = mlp([3, 4, 4, 2], "sigmoid").double()
    probe = torch.randn(20, 3, dtype=torch.float64)
    with torch.no_grad():
        model[0].bias[:2] = 100.0  # two of four first-layer units saturated on every input
    assert saturated_share(model, probe, act, 0.025) >= 0.25
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    share = saturated_share(model, probe, act, 0.025)
    assert share != share  # NaN, not "not saturated"


def test_steps_to_target_counts_divergence_as_a_failure():
    """training_dynamics: a diverged run's time is NaN (a failure that leaves "sigmoid is the
    slowest" undecided), never inf (never reached: the slowest time, which would favour it)."""
    import math

    from mlatlas.core.claims import Experiment, decide_lab
    from mlatlas.foundations.activations.labs.training_dynamics import steps_to_target

    nan = math.nan
    evals = [(10, np.array([0.5, 0.5, 0.5])), (20, np.array([0.85, 0.6, nan]))]
    evals.append((30, np.array([0.9, 0.7, nan])))
    hit = steps_to_target(evals, 0.8)
    assert hit[0] == 20 and hit[1] == math.inf and math.isnan(hit[2])

    def verdict(sigmoid_time):
        c = Experiment("slowest", "i", "steps", ">", 0.0, paired=True, censor_at=1010)
        for i in range(8):
            c.add(i, 1010.0 if i else sigmoid_time, 400.0 + 10 * i)
        return decide_lab([c])[0]

    assert verdict(math.inf)["verdict"] == "supported"  # never reached: counted as 1010
    diverged = verdict(nan)
    assert diverged["verdict"] == "inconclusive" and diverged["n_failed"] == 1
