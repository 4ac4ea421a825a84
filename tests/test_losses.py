"""Losses equal torch (values and gradients, float64, rtol 1e-8) or closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlatlas.core.ensemble import member_accuracy
from mlatlas.foundations import losses as L

TOL = {"rtol": 1e-8, "atol": 1e-10}


def _pair(fn_ours, fn_ref, *tensors):
    """Compare outputs and gradients w.r.t. every float input."""
    a = [t.clone().requires_grad_(t.is_floating_point()) for t in tensors]
    b = [t.clone().requires_grad_(t.is_floating_point()) for t in tensors]
    out_a, out_b = fn_ours(*a), fn_ref(*b)
    torch.testing.assert_close(out_a, out_b, **TOL)
    out_a.backward()
    out_b.backward()
    for ta, tb in zip(a, b, strict=True):
        if ta.is_floating_point():
            torch.testing.assert_close(ta.grad, tb.grad, **TOL)


def _data(seed=0, n=64, c=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    z[0, 0], z[1, 1], z[2] = 60.0, -60.0, 0.0  # large |z| and an all-tied row
    y = torch.randint(0, c, (n,), generator=g)
    return g, z, y


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_losses(seed):
    g, z, _ = _data(seed)
    t = torch.randn(z.shape, generator=g, dtype=torch.float64) * 3
    t[3] = z[3]  # zero residuals
    _pair(L.mse, F.mse_loss, z, t)
    _pair(L.mae, F.l1_loss, z, t)
    for delta in (0.5, 1.0, 4.0):
        _pair(
            lambda a, b, d=delta: L.huber(a, b, d),
            lambda a, b, d=delta: F.huber_loss(a, b, delta=d),
            z,
            t,
        )


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_cross_entropy_with_smoothing_and_weights(smoothing):
    g, z, y = _data()
    _pair(
        lambda a: L.cross_entropy(a, y, smoothing),
        lambda a: F.cross_entropy(a, y, label_smoothing=smoothing),
        z,
    )
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    _pair(
        lambda a: L.cross_entropy(a, y, smoothing, weight=w),
        lambda a: F.cross_entropy(a, y, weight=w, label_smoothing=smoothing),
        z,
    )


def test_bce_kl_hinge():
    g, z, _ = _data()
    logit = z[:, 0]
    yb = torch.randint(0, 2, (64,), generator=g).double()
    _pair(
        lambda a: L.bce_with_logits(a, yb),
        lambda a: F.binary_cross_entropy_with_logits(a, yb),
        logit,
    )
    _pair(
        lambda a: L.bce_with_logits(a, yb, pos_weight=3.0),
        lambda a: F.binary_cross_entropy_with_logits(
            a, yb, pos_weight=torch.tensor(3.0, dtype=torch.float64)
        ),
        logit,
    )
    p = torch.softmax(torch.randn(64, 5, generator=g, dtype=torch.float64), 1)
    p[0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)  # zeros in the target
    _pair(
        lambda a: L.kl_div(L.log_softmax(a), p),
        lambda a: F.kl_div(F.log_softmax(a, 1), p, reduction="batchmean"),
        z,
    )
    _, z2, y2 = _data(3)
    for m in (0.5, 1.0):
        _pair(
            lambda a, m=m: L.multiclass_hinge(a, y2, m),
            lambda a, m=m: F.multi_margin_loss(a, y2, margin=m),
            z2,
        )
    ypm = yb * 2 - 1
    closed = torch.clamp(1 - ypm * logit, min=0).mean()
    torch.testing.assert_close(L.binary_hinge(logit, ypm), closed)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_losses(gamma):
    g, z, y = _data()
    logit = z[:, 1]
    yb = (torch.rand(64, generator=g) > 0.7).double()
    if gamma == 0:
        _pair(
            lambda a: L.focal_binary(a, yb, 0.0),
            lambda a: F.binary_cross_entropy_with_logits(a, yb),
            logit,
        )
        _pair(lambda a: L.focal_multiclass(a, y, 0.0), lambda a: F.cross_entropy(a, y), z)
    # closed form, written the naive way on moderate logits
    zm = logit.clamp(-15, 15)
    p = torch.sigmoid(zm)
    p_t = torch.where(yb > 0.5, p, 1 - p)
    a_t = torch.where(yb > 0.5, 0.25, 0.75)
    naive = (-a_t * (1 - p_t) ** gamma * torch.log(p_t)).mean()
    torch.testing.assert_close(
        L.focal_binary(zm, yb, gamma, alpha=0.25), naive, rtol=1e-10, atol=1e-12
    )
    q = torch.softmax(z.clamp(-15, 15), 1).gather(1, y[:, None])[:, 0]
    naive_mc = (-((1 - q) ** gamma) * torch.log(q)).mean()
    torch.testing.assert_close(L.focal_multiclass(z.clamp(-15, 15), y, gamma), naive_mc)
    assert torch.isfinite(
        L.focal_binary(
            torch.tensor([1e4, -1e4], dtype=torch.float64), torch.tensor([0.0, 1.0]), gamma
        )
    )


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_focal_gradient_finite_when_confident(gamma):
    z = torch.tensor([30.0, -30.0, 100.0, 0.0], requires_grad=True)  # float32: p_t rounds to 1
    y = torch.tensor([1.0, 0.0, 1.0, 1.0])
    L.focal_binary(z, y, gamma).backward()
    assert torch.isfinite(z.grad).all()
    zm = torch.tensor([[50.0, 0.0, -50.0], [0.0, 0.0, 0.0]], requires_grad=True)
    L.focal_multiclass(zm, torch.tensor([0, 1]), gamma).backward()
    assert torch.isfinite(zm.grad).all()


def test_focal_gradient_finite_differences():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(20, generator=g, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(20, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda a: L.focal_binary(a, y, 2.0, 0.25), (z,))
    z2 = torch.randn(8, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y2 = torch.randint(0, 4, (8,), generator=g)
    assert torch.autograd.gradcheck(lambda a: L.focal_multiclass(a, y2, 1.5), (z2,))


def test_metric_losses():
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(32, 8, generator=g, dtype=torch.float64) for _ in range(3))
    p[0] = a[0]  # coincident pair: the eps keeps the gradient finite
    for m in (0.2, 1.0, 5.0):
        _pair(
            lambda x, y_, z, m=m: L.triplet(x, y_, z, m),
            lambda x, y_, z, m=m: F.triplet_margin_loss(x, y_, z, margin=m),
            a,
            p,
            n,
        )
    same = (torch.rand(32, generator=g) > 0.5).double()
    d = F.pairwise_distance(a, p)
    closed = (same * d**2 + (1 - same) * torch.clamp(1.0 - d, min=0) ** 2).mean() / 2
    torch.testing.assert_close(L.contrastive_margin(a, p, same), closed)


def test_nt_xent_against_a_loop():
    g = torch.Generator().manual_seed(1)
    z1, z2 = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(2))
    t = 0.3
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + 6) % n2
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    assert abs(L.nt_xent(z1, z2, t).item() - total / n2) < 1e-10
    # identical views of well-separated points: the loss approaches its floor 0 as t -> 0
    e = torch.eye(4, dtype=torch.float64)
    assert L.nt_xent(e, e, 0.05).item() < 1e-6


# --- helpers of the losses labs ---------------------------------------------------------


def test_member_batches_follow_each_members_stream():
    import numpy as np

    from mlatlas.core.ensemble import member_batches
    from mlatlas.core.seeding import numpy_rng
    from mlatlas.core.train import batches_for_steps

    rngs = [numpy_rng(1, "a"), numpy_rng(1, "a"), numpy_rng(2, "a")]
    got = list(member_batches([batches_for_steps(50, 8, 13, g) for g in rngs]))
    assert len(got) == 13 and got[0].shape == (3, 8)
    ref = list(batches_for_steps(50, 8, 13, numpy_rng(2, "a")))
    for t, b in enumerate(got):
        assert torch.equal(b[0], b[1])  # same stream, same batches (common random numbers)
        assert torch.equal(b[2], ref[t])
    assert not all(torch.equal(b[0], b[2]) for b in got)
    assert np.unique(torch.cat([b[2] for b in got[:6]]).numpy()).size == 48  # one epoch


def test_member_accuracy_matches_each_member_and_flags_divergence():
    from mlatlas.core.ensemble import Ensemble
    from mlatlas.core.train import accuracy, make_mlp

    torch.manual_seed(0)
    ens = Ensemble([make_mlp([6, 8, 3]) for _ in range(3)])
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))
    acc = member_accuracy(ens, x, y)
    for r in range(3):
        assert acc[r] == pytest.approx(accuracy(ens.member(r), x, y))
    with torch.no_grad():
        ens.stacked[0][1] = float("nan")
    acc = member_accuracy(ens, x, y)
    assert math.isnan(acc[1]) and not math.isnan(acc[0])


def test_scaling_the_loss_is_sgd_at_that_lr():
    """mse_vs_ce trains every lr in one ensemble: SGD+momentum at lr 1 on s * loss is SGD+momentum
    at lr s on the loss."""
    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(5, generator=g, dtype=torch.float64)
    xs = [torch.randn(5, generator=g, dtype=torch.float64) for _ in range(10)]
    out = []
    for lr, scale in ((0.3, 1.0), (1.0, 0.3)):
        w = w0.clone().requires_grad_()
        opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
        for x in xs:
            opt.zero_grad()
            (scale * ((w @ x) - 1) ** 2).backward()
            opt.step()
        out.append(w.detach())
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-12)


def test_contrastive_pairs_and_curriculum_pacing():
    from mlatlas.core.seeding import replicate
    from mlatlas.foundations.losses.labs.contrastive_embedding import pair_batches
    from mlatlas.foundations.losses.labs.curriculum import paced_batches

    y = torch.arange(40) % 4
    reps = [replicate(0, 0), replicate(0, 0), replicate(0, 1)]
    for a, p, neg in pair_batches(y, 8, 5, reps):
        assert torch.equal(y[p], y[a])  # positives share the anchor's class
        assert torch.equal(a[0], a[1]) and torch.equal(p[0], p[1])
        for r in range(3):
            assert torch.equal(a[r][neg[r]], torch.roll(a[r], int((neg[r][0] * -1) % 8)))
    order = torch.randperm(100, generator=torch.Generator().manual_seed(0))
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)]
    first = next(paced_batches([order, None], gens, 100, 10, 40, 0.2))
    assert set(first[0].tolist()) <= set(order[:20].tolist())  # the easiest 20% at step 0
    batches = list(paced_batches([order, None], gens, 100, 10, 40, 0.2))
    assert len(batches) == 40


def test_scorer_rank_agreement_is_one_for_alike_scorers_and_minus_one_for_reversed():
    """Spearman correlation of the per-example losses of each pair of seeds' scorers: two
    scorers that rank examples alike (one scaled) give 1, a reversed ranking gives -1."""
    from mlatlas.foundations.losses.labs.curriculum import scorer_rank_agreement

    a = torch.arange(1.0, 31.0, dtype=torch.float64)
    y = torch.zeros(30, dtype=torch.long)  # loss softplus(-a): decreasing in a
    logits = lambda s: torch.stack([s, torch.zeros_like(s)], 1)  # noqa: E731
    same = torch.stack([logits(a), logits(2 * a)])
    assert abs(scorer_rank_agreement(same, y) - 1) < 1e-12
    assert abs(scorer_rank_agreement(torch.stack([logits(a), logits(-a)]), y) + 1) < 1e-12


def test_curriculum_orders_per_seed_and_a_seed_without_a_scorer_fails(tmp_path):
    """Each seed ranks the examples with its own scorer (the orderings differ across seeds),
    and a seed whose scorer diverged has no curriculum: every easy-to-hard claim counts it as
    failed instead of giving it a value."""
    import numpy as np

    from mlatlas.core.runner import get_lab, run_lab
    from mlatlas.foundations.losses.labs import curriculum as module

    real = module.fit

    def scorer_0_diverges(*args, **kwargs):
        res = real(*args, **kwargs)
        if kwargs.get("desc") == "scorers":
            res.diverged = np.atleast_1d(res.diverged).copy()
            res.diverged[0] = True
        return res

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "fit", scorer_0_diverges)
        r = run_lab(get_lab("losses", "curriculum"), "smoke", 0, out=tmp_path)
    assert r.ok, r.error
    assert r.metrics["scorers_diverged"] == 1
    assert r.metrics["scorer_rank_agreement"] < 0.999  # per-seed orderings, not one shared
    easy = [c for c in r.claims if "easy-to-hard" in c["statement"]]
    assert easy and all(0 in c["failed_ids"] for c in easy)
    assert all(c["verdict"] == "inconclusive" for c in easy)
