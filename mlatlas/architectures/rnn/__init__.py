r"""Topic 6, recurrent neural networks and LSTMs.

A recurrent network applies one cell at every step, $h_t = f(x_t, h_{t-1})$, so what it
learns about step $t$ must travel through $h$ to every later step, and gradients travel
back through the product $\prod_t \partial h_{t+1}/\partial h_t$, which shrinks or grows
geometrically with distance (Bengio, Simard & Frasconi 1994). The LSTM's additive cell
state and the GRU's update gate give that product a path whose factors stay near one.
`cells` writes the Elman, LSTM and GRU equations; `train` holds the models and clipping
helpers the labs share; the labs (`labs/`, one file each) measure long-range memory, gradient
decay, exploding gradients with clipping, and a character language model.
"""

from mlatlas.architectures.rnn.cells import (
    Recurrent,
    gru_cell,
    lstm_cell,
    rnn_cell,
    torch_equivalent,
)

__all__ = ["Recurrent", "gru_cell", "lstm_cell", "rnn_cell", "torch_equivalent"]
