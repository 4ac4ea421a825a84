"""How fast the gradient decays with distance through time, for each cell at init."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.architectures.rnn.cells import Recurrent
from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record

KINDS = ("rnn", "lstm", "gru")


@lab("rnn", insights=["vanishing gradients in sequences", "gating mechanisms"])
def gradient_through_time(ctx: Lab) -> None:
    """How fast ||dL/dh_t|| decays with the distance from the loss, for each cell at init.

    Backpropagation through time multiplies by dh_{t+1}/dh_t at every step: for a tanh RNN
    that is diag(1 - h^2) W_hh, typically shrinking the gradient geometrically (Bengio,
    Simard & Frasconi 1994); the LSTM's cell path is multiplied by the forget gate only.
    The loss reads the last hidden state (L = |h_T|^2) of a batch of Gaussian sequences; the
    fitted slope of log ||dL/dh_t|| against the distance gives a decay factor per step. Every
    replicate draws one input batch, shared by the three cells, and initialises each cell
    with PyTorch's default init (float64: in float32 the far gradients underflow to 0).
    Both claims are experiments over the random init and inputs, tested on log10 per seed.
    """
    cfg = ctx.config(
        length=per_scale(25, 100, 200), hidden=64, batch=32, seeds=per_scale(3, 10, 20)
    )
    ctx.dataset(record("gaussian_sequences", length=cfg.length, batch=cfg.batch))
    d20 = min(20, cfg.length - 1)
    vanish = ctx.claim(
        f"In a tanh RNN at init the gradient {d20} steps back is below 1e-2 of the last step's",
        quantity=f"||dL/dh_(T-{d20})|| / ||dL/dh_T|| of the tanh RNN, per seed (geometric mean)",
        direction="<",
        margin=1e-2,
        log=True,
        insight="vanishing gradients in sequences",
    )
    slower = ctx.claim(
        "The LSTM's gradient decays more slowly per step than the tanh RNN's",
        quantity="fitted gradient factor per step; a = LSTM, b = tanh RNN (same inputs), "
        "paired by seed, tested on log10(a / b)",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
        insight="gating mechanisms",
    )
    norms: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    for rep in ctx.replicates(cfg.seeds):
        x = torch.randn(
            cfg.batch, cfg.length, 2, dtype=torch.float64, generator=rep.generator("inputs")
        )
        for kind in KINDS:
            rep.seed_torch("init", kind)
            model = Recurrent(kind, 2, cfg.hidden).double()
            _, _, states = model(x, return_all_states=True)
            hs = states[0]
            for h in hs:
                h.retain_grad()
            hs[-1].pow(2).sum().backward()
            norms[kind].append(np.array([h.grad.norm().item() for h in reversed(hs)]))
    dist = np.arange(cfg.length)
    rows, rates, rel = [], {}, {}
    for kind in KINDS:
        g = np.stack(norms[kind])  # seeds x distance
        rel[kind] = g / g[:, :1]
        rates[kind] = np.array([_factor_per_step(dist, r) for r in rel[kind]])
        rows.append(
            {
                "cell": kind,
                "factor_per_step_geomean": float(10 ** np.log10(rates[kind]).mean()),
                f"relative_norm_at_distance_{d20}_geomean": _geomean(rel[kind][:, d20]),
                f"relative_norm_at_distance_{cfg.length - 1}_geomean": _geomean(rel[kind][:, -1]),
            }
        )
    for i in range(cfg.seeds):
        vanish.add(i, rel["rnn"][i, d20])
        slower.add(i, rates["lstm"][i], rates["rnn"][i])
    ctx.table(
        "decay",
        rows,
        note=f"PyTorch's default init, {cfg.seeds} seeds, loss = |h_T|^2; geometric means",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for j, kind in enumerate(KINDS):
        for i, r in enumerate(rel[kind]):
            ax[0, 0].semilogy(dist, r, color=f"C{j}", lw=0.6, alpha=0.6, label=None if i else kind)
    ax[0, 0].axvline(d20, color="gray", ls=":", lw=0.8)
    ax[0, 0].axhline(1e-2, color="gray", ls="--", lw=0.8)
    ax[0, 0].set(
        xlabel="distance T - t", ylabel="||dL/dh_t|| / ||dL/dh_T||", title="gradient through time"
    )
    ax[0, 0].legend()
    ctx.figure(
        "bptt", fig, "Gradient norm against distance from the loss at init, one line per seed."
    )


def _factor_per_step(dist: np.ndarray, rel: np.ndarray) -> float:
    """10^slope of log10(relative norm) against distance, fitted where it is representable."""
    ok = rel > 1e-280
    ok[0] = False
    return float(10 ** np.polyfit(dist[ok], np.log10(rel[ok]), 1)[0])


def _geomean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[x > 0]
    return float(10 ** np.log10(x).mean()) if x.size else 0.0
