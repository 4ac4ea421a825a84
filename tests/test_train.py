"""The shared training loop and batched ensembles: an ensemble of R models trained with an
element-wise optimizer equals R separate runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mlatlas.core.ensemble import Ensemble
from mlatlas.core.seeding import derive_seed, numpy_rng, replicate, seed_global
from mlatlas.core.train import batches_for_steps, fit


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 4, generator=g, dtype=torch.float64), torch.randint(
        0, 3, (64,), generator=g
    )


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_ensemble_equals_separate_runs(opt_name):
    """Tolerance 1e-10 in float64: the same arithmetic, batched."""
    x, y = _data()
    make_opt = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    }[opt_name]
    models = []
    for r in range(3):
        seed_global(derive_seed(7, r))
        models.append(_net())
    ens = Ensemble(models)

    def one_loss(m, idx):
        return nn.functional.cross_entropy(m(x[idx]), y[idx])

    def ens_loss(m, idx):
        logits = m(x[idx])  # (R, B, 3)
        return torch.stack([nn.functional.cross_entropy(lr, y[idx]) for lr in logits])

    res = fit(
        ens, make_opt(ens.parameters()), ens_loss, batches_for_steps(64, 16, 20, numpy_rng(1)), 20
    )
    assert res.losses.shape == (20, 3) and not res.diverged.any()
    for r, m in enumerate(models):
        single = fit(
            m, make_opt(m.parameters()), one_loss, batches_for_steps(64, 16, 20, numpy_rng(1)), 20
        )
        np.testing.assert_allclose(res.losses[:, r], single.losses, rtol=0, atol=1e-10)
        for (k, a), b in zip(
            m.state_dict().items(), ens.member(r).state_dict().values(), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10, msg=k)


def test_fit_stops_on_divergence_and_on_request():
    seed_global(0)
    m = nn.Linear(2, 1)
    x = torch.randn(32, 2)
    opt = torch.optim.SGD(m.parameters(), lr=1e3)  # diverges

    def loss_fn(model, idx):
        return ((model(x[idx]) - 1.0) ** 2).mean() * 1e30

    res = fit(m, opt, loss_fn, batches_for_steps(32, 8, 200, numpy_rng(0)), 200)
    assert bool(res.diverged) and res.steps < 200
    m2 = nn.Linear(2, 1)
    opt2 = torch.optim.SGD(m2.parameters(), lr=1e-2)
    res2 = fit(
        m2,
        opt2,
        lambda model, idx: ((model(x[idx]) - 1.0) ** 2).mean(),
        batches_for_steps(32, 8, 200, numpy_rng(0)),
        200,
        on_step=lambda step, loss: step == 17,
    )
    assert res2.steps == 17 and res2.stopped_early and not bool(res2.diverged)


def test_replicate_streams_are_independent_and_repeatable():
    a, b = replicate(0, 0), replicate(0, 1)
    assert a.seed != b.seed and replicate(0, 0) == a and replicate(1, 0).seed != a.seed
    assert a.rng("x").integers(1 << 30) == a.rng("x").integers(1 << 30)
    assert a.rng("x").integers(1 << 30) != a.rng("y").integers(1 << 30)
    g1, g2 = a.generator("init"), a.generator("init")
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))


class _TiedLM(nn.Module):
    """Embedding, a hidden layer, and an output head that shares the embedding matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.lin = nn.Embedding(7, 4), nn.Linear(4, 4)
        self.head = nn.Linear(4, 7, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.lin(self.emb(x))))


def test_ensemble_keeps_tied_weights_tied():
    """A tied matrix is one stacked parameter; each member's output and its gradient (the sum
    over both uses) equal the member's alone (float64, 1e-12), and `member` rebuilds the tie."""
    torch.manual_seed(0)
    models = [_TiedLM().double() for _ in range(3)]
    ens = Ensemble(models)
    assert ens.names == ["emb.weight", "lin.weight", "lin.bias"]
    x = torch.randint(0, 7, (5,))
    out = ens(x)
    (out**2).sum().backward()
    for r, m in enumerate(models):
        alone = m(x)
        torch.testing.assert_close(out[r], alone, rtol=1e-12, atol=1e-12)
        (alone**2).sum().backward()
        for stacked, p in zip(ens.stacked, m.parameters(), strict=True):
            torch.testing.assert_close(stacked.grad[r], p.grad, rtol=1e-12, atol=1e-12)
        copy = ens.member(r)
        assert copy.head.weight is copy.emb.weight
        torch.testing.assert_close(copy(x), alone, rtol=1e-12, atol=1e-12)


class _ConvNet(nn.Module):
    """A convolution with GroupNorm and a second input: what the looped call exists for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(self.conv(x)) * t[:, None, None, None]
        return h, h.mean((1, 2, 3))


@pytest.mark.parametrize("per_member", [False, True])
def test_looped_call_equals_the_vmapped_call(per_member):
    """`Ensemble.call(loop=True)` gives vmap's outputs (a tuple here) and gradients for shared
    and per-member inputs (float64, 1e-12); a loop that fed every member member 0's weights
    would fail: the members differ."""
    torch.manual_seed(0)
    ens = Ensemble([_ConvNet().double() for _ in range(3)])
    shape = (3, 5, 2, 6, 6) if per_member else (5, 2, 6, 6)
    x = torch.randn(shape, dtype=torch.float64)
    t = torch.rand(shape[:-3], dtype=torch.float64)
    grads = []
    for loop in (False, True):
        ens.zero_grad()
        h, m = ens.call(lambda f, a, b: f(a, b), x, t, per_member=per_member, loop=loop)
        ((h**2).sum() + m.sum()).backward()
        grads.append(([p.grad.clone() for p in ens.stacked], h, m))
    (g0, h0, m0), (g1, h1, m1) = grads
    torch.testing.assert_close(h1, h0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m1, m0, rtol=1e-12, atol=1e-12)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(h0[0], h0[1])


def test_a_lab_that_trained_elsewhere_than_asked_says_so():
    """`fit` records where it found the model; the runner notes a mismatch with --device."""
    from types import SimpleNamespace

    from mlatlas.core.runner import device_note

    ctx = SimpleNamespace(
        fit_devices=set(), divergences=[], notes=[], progress=lambda it, desc: it, log=print
    )
    model = nn.Linear(3, 1)
    batches = ((torch.randn(4, 3), torch.randn(4, 1)) for _ in range(2))
    fit(model, torch.optim.SGD(model.parameters(), 0.1),
        lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), batches, 2, ctx=ctx)  # fmt: skip
    assert ctx.fit_devices == {"cpu"}
    note = device_note(torch.device("cuda"), ctx.fit_devices)
    assert note is not None and "ran on cpu" in note
    assert device_note(torch.device("cuda"), {"cuda:0"}) is None
    assert device_note(torch.device("cpu"), {"cpu"}) is None
    assert device_note(torch.device("cuda"), set()) is None  # a lab that trains nothing


def test_member_batches_draw_form_stacks_tuples_and_refuses_uneven_streams():
    from mlatlas.core.ensemble import member_batches

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(4, 3, generator=g), torch.randint(0, 5, (4,), generator=g)

    gens = [torch.Generator().manual_seed(s) for s in (0, 0, 1)]
    stream = member_batches(gens, draw)
    (x, y), (x2, _) = next(stream), next(stream)  # endless: a generator never runs out
    assert x.shape == (3, 4, 3) and y.shape == (3, 4) and y.dtype == torch.int64
    assert torch.equal(x[0], x[1]) and not torch.equal(x[0], x[2])
    ref = torch.Generator().manual_seed(1)
    assert torch.equal(x[2], draw(ref)[0]) and torch.equal(x2[2], draw(ref)[0])

    with pytest.raises(ValueError, match="member 1's batches ended before member 0's"):
        list(member_batches([iter(range(3)), iter(range(2))], lambda it: torch.tensor(next(it))))
