"""Our RNN, LSTM and GRU equal nn.RNN / nn.LSTM / nn.GRU with copied weights: outputs, final
states and gradients (float64, 1e-10)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlatlas.architectures.rnn.cells import Recurrent, torch_equivalent

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
