"""Lab: training throughput of a transformer and an LSTM of the same size, by length."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.core.train import count_params

VOCAB = 64


class LSTMLM(nn.Module):
    """Embedding, a stacked LSTM (PyTorch's fused kernel), a linear head."""

    def __init__(self, d: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.rnn = nn.LSTM(d, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


def lstm_params(d: int, hidden: int, layers: int) -> int:
    """Parameters of `LSTMLM`: the embedding, 4 gates per layer (input and recurrent weights,
    two biases: 4 (d_in h + h^2 + 2 h), with d_in = d in the first layer and h above), the head."""
    gates = 4 * (d * hidden + hidden**2 + 2 * hidden)
    upper = 4 * (2 * hidden**2 + 2 * hidden) * (layers - 1)
    return VOCAB * d + gates + upper + hidden * VOCAB + VOCAB


def lstm_width_for(target: int, d: int, layers: int) -> int:
    """The hidden width whose `layers`-layer `LSTMLM` has the parameter count closest to
    `target`: the positive root of lstm_params(h) = target (a quadratic in h), rounded to the
    nearer of its two neighbouring integers."""
    a = 4 + 8 * (layers - 1)
    b = 4 * d + 8 + 8 * (layers - 1) + VOCAB
    c = VOCAB * d + VOCAB - target
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    near = (max(1, math.floor(root)), max(1, math.ceil(root)))
    return min(near, key=lambda h: abs(lstm_params(d, h, layers) - target))


def _timed_pass(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds of one forward + backward pass of next-token cross-entropy on `x`."""
    model.zero_grad(set_to_none=True)
    # a GPU runs its kernels asynchronously: time from idle until they have all finished
    wait = torch.cuda.synchronize if x.is_cuda else lambda: None
    wait()
    t0 = time.perf_counter()
    F.cross_entropy(model(x).reshape(-1, VOCAB), x.reshape(-1)).backward()
    wait()
    return time.perf_counter() - t0


@lab("transformers", insights=["parallelizable sequence modeling"], timing=True)
def parallelism(ctx: Lab) -> None:
    """Training throughput (tokens per second of a forward + backward pass) of a transformer
    and an LSTM with about the same number of parameters, as the sequence grows.

    An LSTM must process positions one after another; a transformer layer processes all
    positions at once with matrix products, at a cost growing with T^2 in the attention.
    Every length sees the same number of tokens per pass. Each timing trial times one pass
    of each model on the same batch, alternating which goes first; the trials (after one
    warm-up) are the samples of a paired claim on the log throughput ratio, so its interval
    covers trial-to-trial timing noise on this machine at this moment, not other machines.
    The throughputs are wall-clock measurements: they differ from run to run.

    "The same size" is the same parameter count: the LSTM has as many layers as the
    transformer, and its hidden width is solved for the whole model as built (embedding, every
    layer, head), so the counts agree within a fraction of a percent (a check, and a test;
    both counts and their ratio are recorded). A width solved for one layer but built into
    two would give the LSTM over twice the transformer's parameters, and slow it down in the
    claim's favour. With the counts matched, a CPU may run the LSTM faster; the claim is
    stated as before and reports what it finds. It covers every length and names the pass
    it times; on a CPU the ratio need not grow with length (attention's T^2 term grows while
    the LSTM's per-step products shrink with the batch).
    """
    cfg = ctx.config(
        lengths=per_scale([16, 64], [16, 32, 64, 128, 256], [64, 128, 256, 512, 1024]),
        tokens=per_scale(1024, 4096, 16384),
        d=128,
        layers=2,
        trials=per_scale(3, 8, 20),
    )
    ctx.dataset(record("random_tokens", vocab=VOCAB))
    where = (
        f"this machine's {torch.get_num_threads()} CPU threads"
        if ctx.device.type == "cpu"
        else f"this machine's {ctx.device.type.upper()} device"
    )
    claim = ctx.claim(
        f"On {where}, at every sequence length "
        f"from {min(cfg.lengths)} to {max(cfg.lengths)}, a forward + backward pass of the "
        "transformer processes more tokens per second than one of the LSTM of the same size",
        quantity="tokens per second of one forward + backward pass, a = transformer, "
        "b = LSTM, one sample per timing trial; one part per length",
        direction=">",
        margin=1.0,
        paired=True,
        log=True,
        unit="item",
    )
    ctx.seed_torch("models")
    gpt = GPT(
        GPTConfig(
            vocab=VOCAB,
            block_size=max(cfg.lengths),
            n_layer=cfg.layers,
            n_head=4,
            n_embd=cfg.d,
            kernel="torch",
        )
    )
    # an LSTM stack of as many layers, its width solved so the whole model (embedding, every
    # layer built, head) has the transformer's parameter count
    n_gpt = count_params(gpt)
    lstm = LSTMLM(cfg.d, lstm_width_for(n_gpt, cfg.d, cfg.layers), cfg.layers)
    n_lstm = count_params(lstm)
    ctx.metric("transformer_params", n_gpt)
    ctx.metric("lstm_params", n_lstm)
    ctx.metric("lstm_hidden", lstm.rnn.hidden_size)
    ctx.metric("param_ratio_lstm_to_transformer", n_lstm / n_gpt)
    ctx.check(
        "The LSTM and the transformer have the same number of parameters, within 3%",
        abs(n_lstm / n_gpt - 1),
        direction="<=",
        bound=0.03,
        quantity=f"|LSTM / transformer parameters - 1| ({n_lstm} / {n_gpt})",
    )
    models = {"transformer": gpt, "lstm": lstm}
    rows = []
    for t in ctx.progress(cfg.lengths, desc="lengths"):
        b = max(1, cfg.tokens // t)
        x = torch.as_tensor(ctx.rng.integers(0, VOCAB, (b, t)))
        tps: dict[str, list[float]] = {"transformer": [], "lstm": []}
        for trial in range(cfg.trials + 1):
            order = list(models) if trial % 2 == 0 else list(models)[::-1]
            seconds = {name: _timed_pass(models[name], x) for name in order}
            if trial == 0:
                continue  # warm-up
            for name, s in seconds.items():
                tps[name].append(b * t / s)
            claim.add(trial - 1, tps["transformer"][-1], tps["lstm"][-1], part=f"T={t}")
        med = {k: float(np.median(v)) for k, v in tps.items()}
        rows.append(
            {
                "length": t,
                "batch": b,
                "transformer_tok_s": med["transformer"],
                "lstm_tok_s": med["lstm"],
                "ratio": med["transformer"] / med["lstm"],
            }
        )
        ctx.log(step=t, ratio=rows[-1]["ratio"])
    ctx.table(
        "throughput",
        rows,
        note=f"median over {cfg.trials} trials of one forward + backward pass; transformer "
        f"{n_gpt} params, LSTM {n_lstm} (hidden {lstm.rnn.hidden_size}, ratio "
        f"{n_lstm / n_gpt:.3f}); absolute numbers depend on the machine and its load, the "
        "ratio is what to read",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    lengths = [r["length"] for r in rows]
    ax[0, 0].loglog(lengths, [r["transformer_tok_s"] for r in rows], "o-", label="transformer")
    ax[0, 0].loglog(lengths, [r["lstm_tok_s"] for r in rows], "s-", label="LSTM")
    ax[0, 0].set(xlabel="sequence length", ylabel="tokens / s (train pass)", title="throughput")
    ax[0, 0].legend()
    ctx.figure("throughput", fig, "Training tokens per second against sequence length.")
