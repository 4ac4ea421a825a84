"""The diffusion labs' training and sampling helpers: the ensemble objective is L_simple of each
member, arms of a replicate share their draws, sampling a member is sampling the model alone,
and the digit judge reads samples as the yardstick does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import Replicate
from mlatlas.generative.diffusion import (
    DenoiserMLP,
    UNet,
    cosine_schedule,
    eps_loss,
    linear_schedule,
    q_sample,
    sample,
)
from mlatlas.generative.diffusion.process import draw_t_eps, drop_labels
from mlatlas.generative.diffusion.train import (
    denoiser_objective,
    digit_judge,
    digits,
    fit_denoisers,
    judged,
    member_samples,
    to_model,
)

torch.set_num_threads(1)
T = 50


def _unets(n: int) -> list[UNet]:
    torch.manual_seed(0)
    return [UNet(channels=(8, 16), n_classes=10) for _ in range(n)]


@pytest.mark.parametrize("loop", [True, False])
def test_ensemble_objective_is_each_members_eps_loss(loop):
    """With one schedule, member r's loss and its gradient equal `eps_loss` of member r alone
    on its minibatch, with the replicate's draws of t, ε and dropped labels (float32, 1e-5);
    vmapped and looped members alike."""
    models = _unets(2)
    ens = Ensemble(models)
    sched = linear_schedule(T)
    gen = torch.Generator().manual_seed(3)
    data = torch.randn(20, 1, 8, 8)
    labels = torch.randint(0, 10, (20,), generator=gen)
    idx = torch.stack([torch.arange(6), torch.arange(6, 12)])
    loss_fn = denoiser_objective(data, labels, [sched], 2, 0.5, 10, loop=loop)
    state = gen.get_state()
    losses = loss_fn(ens, (idx, torch.tensor(0)), gen)
    losses.sum().backward()
    gen.set_state(state)
    for r, m in enumerate(models):
        alone = eps_loss(m, sched, data[idx[r]], gen, labels[idx[r]], 10, 0.5)
        alone.backward()
        torch.testing.assert_close(losses[r], alone, rtol=1e-5, atol=1e-6)
        for stacked, p in zip(ens.stacked, m.parameters(), strict=True):
            torch.testing.assert_close(stacked.grad[r], p.grad, rtol=1e-4, atol=1e-6)


def test_arms_of_a_replicate_share_t_eps_and_labels_and_differ_in_the_schedule():
    """Two arms (linear, cosine) of one replicate: arm a's loss is the MSE of member a's ε
    estimate at q_sample under schedule a with the draws of the replicate's one draw; a
    second draw (what unshared arms would see) gives another value."""
    torch.manual_seed(1)
    base = DenoiserMLP(dim=3, hidden=16).double()
    models = [base, base]  # the same weights: only the schedule separates the arms
    ens = Ensemble(models)
    scheds = [linear_schedule(T), cosine_schedule(T)]
    data = torch.randn(10, 3, dtype=torch.float64)
    idx = torch.arange(8).expand(2, 8)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    losses = denoiser_objective(data, None, scheds, 1, loop=False)(ens, (idx, None), gen)
    gen.set_state(state)
    t, eps = draw_t_eps(scheds[0], data[:8], gen)
    for a, sched in enumerate(scheds):
        want = (eps - base(q_sample(sched, data[:8], t, eps), t)).pow(2).mean()
        torch.testing.assert_close(losses[a], want, rtol=1e-10, atol=1e-10)
    t2, eps2 = draw_t_eps(scheds[0], data[:8], gen)
    other = (eps2 - base(q_sample(scheds[1], data[:8], t2, eps2), t2)).pow(2).mean()
    assert not torch.isclose(losses[1], other)
    assert not torch.isclose(losses[0], losses[1])


def test_labels_are_dropped_only_with_p_uncond():
    """drop_labels at p = 0.5 replaces about half of the labels by ∅ and none at p = 0."""
    gen = torch.Generator().manual_seed(0)
    y = torch.zeros(4000, dtype=torch.long)
    share = float((drop_labels(y, 10, 0.5, gen) == 10).double().mean())
    assert 0.47 < share < 0.53
    assert (drop_labels(y, 10, 0.0, gen) == 0).all()


def test_member_samples_are_the_members_own_samples():
    """Sampling member 1 of an ensemble equals `sample` with that model alone, same generator
    seed; another member gives other samples."""
    models = _unets(2)
    ens = Ensemble(models)
    sched = linear_schedule(T)
    y = torch.arange(4)
    kw = {"method": "ddim", "steps": 5, "y": y, "clip": 1.0}
    got = member_samples(ens, sched, (4, 1, 8, 8), [torch.Generator().manual_seed(2)], [1], **kw)
    want = sample(
        models[1].eval(), sched, (4, 1, 8, 8), torch.Generator().manual_seed(2), null_class=10, **kw
    )
    torch.testing.assert_close(got[0], want, rtol=1e-5, atol=1e-6)
    other = member_samples(ens, sched, (4, 1, 8, 8), [torch.Generator().manual_seed(2)], [0], **kw)
    assert not torch.allclose(other[0], want)


def test_judged_maps_model_range_to_the_yardsticks_input():
    """[−1, 1] -> [0, 1], clipped; 14x14 upsampled to 28x28, 8x8 flattened."""
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0]).repeat(40)[:196].view(1, 1, 14, 14)
    up = judged(x, 14)
    assert up.shape == (1, 1, 28, 28) and up.min() >= 0 and up.max() <= 1
    flat = judged(x[..., :8, :8], 8)
    assert flat.shape == (1, 64)
    torch.testing.assert_close(flat.view(8, 8), ((x[0, 0, :8, :8] + 1) / 2).clamp(0, 1))
    torch.testing.assert_close(to_model(torch.full((2, 64), 0.5), 8), torch.zeros(2, 1, 8, 8))


def test_digit_judge_reads_real_digits_as_their_labels_and_fails_wrong_ones():
    """The 8x8 judge's floor is finite; real held-out digits with their own labels are read
    as prompted (> 0.85), with shifted labels they are not (< 0.2); non-finite samples
    score NaN."""
    data = digits("digits", 1, None)
    judge = digit_judge(data, 100)
    assert judge.n == 100 and np.isfinite(judge.floor["frechet_distance"])
    x = to_model(data.test, 8)
    assert judge.prompted_share(x, 8, data.y_test) > 0.85
    assert judge.prompted_share(x, 8, (data.y_test + 1) % 10) < 0.2
    bad = x[:100].clone()
    bad[0] = float("nan")
    assert np.isnan(judge.scores(bad, 8)["frechet_distance"])
    assert np.isnan(judge.prompted_share(bad, 8, data.y_test[:100]))


def test_fit_denoisers_lowers_the_loss_of_every_member():
    """A short fit of two MLP denoisers on a 3-d Gaussian: every member's loss falls."""
    reps = [Replicate(i, 10 + i) for i in range(2)]
    data = torch.randn(500, 3) * 0.3 + 0.5
    build = lambda: DenoiserMLP(dim=3, hidden=32)  # noqa: E731
    _, res = fit_denoisers(
        None,
        reps,
        data,
        None,
        build,
        schedules=[linear_schedule(T)],
        steps=300,
        batch=64,
        lr=3e-3,
        loop=False,
    )
    losses = np.asarray(res.losses)
    assert losses.shape == (300, 2)
    assert (losses[-50:].mean(0) < 0.8 * losses[:20].mean(0)).all()
