"""Our RNN, LSTM and GRU equal nn.RNN / nn.LSTM / nn.GRU with copied weights: outputs, final
states and gradients (float64, 1e-10)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlatlas.architectures.rnn.cells import Recurrent, torch_equivalent
from mlatlas.core.ensemble import clip_members_

TOL = {"rtol": 1e-10, "atol": 1e-10}


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["rnn", "lstm", "gru"]),
    batch=st.integers(1, 3),
    steps=st.integers(1, 7),
    n_in=st.integers(1, 5),
    hidden=st.integers(1, 6),
    layers=st.integers(1, 3),
    with_state=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_equals_torch(kind, batch, steps, n_in, hidden, layers, with_state, seed):
    torch.manual_seed(seed)
    ref = torch_equivalent(kind, n_in, hidden, layers).double()
    ours = Recurrent(kind, n_in, hidden, layers).double()
    ours.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, n_in, generator=g, dtype=torch.float64)
    state = None
    if with_state:
        h0 = torch.randn(layers, batch, hidden, generator=g, dtype=torch.float64)
        state = (
            (h0, torch.randn(layers, batch, hidden, generator=g, dtype=torch.float64))
            if kind == "lstm"
            else h0
        )
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, fin = ours(xa, state)
    out_ref, fin_ref = ref(xb, state)
    torch.testing.assert_close(out, out_ref, **TOL)
    fins = fin if kind == "lstm" else (fin,)
    fins_ref = fin_ref if kind == "lstm" else (fin_ref,)
    for a, b in zip(fins, fins_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    ((out * w).sum() + sum(f.sum() for f in fins)).backward()
    ((out_ref * w).sum() + sum(f.sum() for f in fins_ref)).backward()
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for (name, p), (_, p_ref) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad, p_ref.grad, **TOL, msg=name)


def test_unknown_cell():
    with pytest.raises(ValueError, match="known: rnn, lstm, gru"):
        Recurrent("transformer", 2, 2)


def _elman_pair(seed: int, hidden: int = 5):
    from mlatlas.architectures.rnn.train import ElmanRegressor, SequenceRegressor

    torch.manual_seed(seed)
    fused = SequenceRegressor("rnn", 2, hidden).double()
    unrolled = ElmanRegressor(2, hidden).double()
    unrolled.load_state_dict(fused.state_dict())
    return fused, unrolled


def test_unrolled_elman_equals_nn_rnn():
    fused, unrolled = _elman_pair(0)
    x = torch.randn(4, 9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a, b = fused(x), unrolled(x)
    torch.testing.assert_close(a, b, **TOL)
    a.sum().backward()
    b.sum().backward()
    for (name, p), q in zip(fused.named_parameters(), unrolled.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, **TOL, msg=name)


def test_ensemble_with_per_member_clipping_is_separate_clipped_runs():
    """An Ensemble of unrolled Elman regressors, each member with its own batch and its own
    gradient-norm clip (inf = none), takes exactly the Adam steps of separate clipped runs."""
    from mlatlas.architectures.rnn.train import ClipAdam, ElmanRegressor
    from mlatlas.core.ensemble import Ensemble

    members = []
    for s in range(3):
        torch.manual_seed(s)
        members.append(ElmanRegressor(2, 4).double())
    singles = [ElmanRegressor(2, 4).double() for _ in members]
    for single, m in zip(singles, members, strict=True):
        single.load_state_dict(m.state_dict())
    ens = Ensemble(members)
    max_norm = [0.05, float("inf"), 0.2]
    opt = torch.optim.Adam(ens.parameters(), lr=1e-2)
    opts = [
        ClipAdam(m.parameters(), lr=1e-2, max_norm=c)
        for m, c in zip(singles, max_norm, strict=True)
    ]
    g = torch.Generator().manual_seed(7)
    for _ in range(4):
        x = torch.randn(3, 5, 6, 2, dtype=torch.float64, generator=g)
        y = torch.randn(3, 5, dtype=torch.float64, generator=g)
        opt.zero_grad()
        ((ens(x, per_member=True) - y) ** 2).mean(-1).sum().backward()
        norms = clip_members_(ens.parameters(), torch.tensor(max_norm))
        opt.step()
        for r, (m, o) in enumerate(zip(singles, opts, strict=True)):
            o.zero_grad()
            ((m(x[r]) - y[r]) ** 2).mean().backward()
            o.step()
            torch.testing.assert_close(norms[r], o.last_norms.to(norms.dtype), **TOL)
    for r, m in enumerate(singles):
        for (name, p), q in zip(ens.member(r).named_parameters(), m.parameters(), strict=True):
            torch.testing.assert_close(p, q, **TOL, msg=name)
