"""Elman RNN, LSTM and GRU cells and multi-layer sequence modules, from the gate equations.

Parameters carry PyTorch's names and layouts (weight_ih_l0, weight_hh_l0, bias_ih_l0,
bias_hh_l0; gates stacked along dim 0), so a state dict of nn.RNN / nn.LSTM / nn.GRU loads
as it is and the tests can compare outputs, final states and gradients.

    Elman   h' = tanh(W_i x + b_i + W_h h + b_h)                               (Elman 1990)
    LSTM    i, f, g, o = W_i x + b_i + W_h h + b_h     (split in four, in this order)
            c' = s(f) * c + s(i) * tanh(g);  h' = s(o) * tanh(c')
                                      (Hochreiter & Schmidhuber 1997; Gers et al. 2000)
    GRU     r = s(W_ir x + b_ir + W_hr h + b_hr);  z = s(W_iz x + b_iz + W_hz h + b_hz)
            n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h
                                                                        (Cho et al. 2014)
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def rnn_cell(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> Tensor:
    return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def lstm_cell(
    x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    h, c = state
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
    # the cell path c -> c' is multiplied only by the forget gate: with f near 1 the
    # gradient passes through many steps without shrinking (the "constant error carousel")
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gru_cell(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> Tensor:
    xr, xz, xn = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


class Recurrent(nn.Module):
    """A stack of `num_layers` recurrent layers of one kind ("rnn", "lstm" or "gru") over
    batch-first sequences (B, T, I). Returns (outputs (B, T, H), final state) with the final
    state shaped like PyTorch's: h_n (L, B, H), and for LSTM (h_n, c_n)."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"unknown cell {kind!r}; known: {', '.join(GATES)}")
        self.kind, self.hidden_size, self.num_layers = kind, hidden_size, num_layers
        k = GATES[kind] * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # PyTorch's init: U(-1/sqrt(H), 1/sqrt(H))
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size
            for name, shape in (
                (f"weight_ih_l{layer}", (k, n_in)),
                (f"weight_hh_l{layer}", (k, hidden_size)),
                (f"bias_ih_l{layer}", (k,)),
                (f"bias_hh_l{layer}", (k,)),
            ):
                self.register_parameter(
                    name, nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                )

    def layer_params(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(
            getattr(self, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )  # type: ignore[return-value]

    def forward(self, x: Tensor, state=None, return_all_states: bool = False):
        b, t, _ = x.shape
        zeros = x.new_zeros(self.num_layers, b, self.hidden_size)
        if state is None:
            state = (zeros, zeros.clone()) if self.kind == "lstm" else zeros
        h_n, c_n, all_states = [], [], []
        out = x
        for layer in range(self.num_layers):
            p = self.layer_params(layer)
            h = state[0][layer] if self.kind == "lstm" else state[layer]
            c = state[1][layer] if self.kind == "lstm" else None
            steps = []
            for step in range(t):
                if self.kind == "lstm":
                    h, c = lstm_cell(out[:, step], (h, c), *p)
                elif self.kind == "gru":
                    h = gru_cell(out[:, step], h, *p)
                else:
                    h = rnn_cell(out[:, step], h, *p)
                steps.append(h)
            out = torch.stack(steps, dim=1)
            all_states.append(steps)
            h_n.append(h)
            if c is not None:
                c_n.append(c)
        final = torch.stack(h_n)
        if self.kind == "lstm":
            final = (final, torch.stack(c_n))
        if return_all_states:
            return out, final, all_states
        return out, final


def torch_equivalent(
    kind: str, input_size: int, hidden_size: int, num_layers: int = 1
) -> nn.Module:
    """The PyTorch module whose state dict matches `Recurrent(kind, ...)`."""
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    return cls(input_size, hidden_size, num_layers, batch_first=True)
