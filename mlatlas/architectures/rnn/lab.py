"""Labs of topic 6: the adding problem, gradients through time, exploding gradients and
clipping, a character language model.

Training uses PyTorch's fused recurrent kernels unless `ours=True`; the two are proven
equal in the tests. The gradient-through-time lab always uses this topic's cells, since it
reads the gradient at every step's hidden state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.rnn.cells import Recurrent, torch_equivalent
from mlatlas.core import Lab, lab, new_figure
from mlatlas.core.data import adding_problem, char_corpus, record
from mlatlas.core.stats import mean_ci

KINDS = ("rnn", "lstm", "gru")


class SequenceRegressor(nn.Module):
    """A recurrent layer read out linearly from its last hidden state."""

    def __init__(self, kind: str, n_in: int, hidden: int, ours: bool = False):
        super().__init__()
        self.rnn = Recurrent(kind, n_in, hidden) if ours else torch_equivalent(kind, n_in, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(h[:, -1])[:, 0]


@lab("rnn", insights=["Temporal dependencies", "gating mechanisms"])
def adding(ctx: Lab) -> None:
    """The adding problem: sum two marked numbers seen far apart in a long sequence.

    A model must hold the first marked value for up to T steps. Predicting the mean scores
    MSE 0.167; Hochreiter & Schmidhuber (1997) showed LSTM solving it at lengths where
    plain recurrent nets fail.
    """
    cfg = ctx.config(
        lengths=([10], [25, 50, 100], [50, 100, 200, 400]),
        hidden=64,
        steps=(100, 1500, 6000),
        batch=64,
        lr=1e-3,
        clip=1.0,
        n_test=2000,
        ours=False,
    )
    ctx.dataset(record("adding_problem", lengths=cfg.lengths))
    rows, mse = [], {}
    for length in ctx.progress(cfg.lengths, desc="lengths"):
        x_te, y_te = (
            torch.from_numpy(a)
            for a in adding_problem(cfg.n_test, length, np.random.default_rng(10**6 + length))
        )
        for kind in KINDS:
            torch.manual_seed(ctx.seed)
            model = SequenceRegressor(kind, 2, cfg.hidden, cfg.ours)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            rng = np.random.default_rng(ctx.seed + length)
            for _ in range(cfg.steps):
                x, y = (torch.from_numpy(a) for a in adding_problem(cfg.batch, length, rng))
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
            with torch.no_grad():
                m = F.mse_loss(model(x_te), y_te).item()
            mse[(kind, length)] = m
            rows.append({"length": length, "cell": kind, "test_mse": m, "vs_baseline": m / (1 / 6)})
            ctx.log(step=length, cell=kind, test_mse=m)
    ctx.table(
        "adding", rows, note=f"{cfg.steps} Adam steps of {cfg.batch}; baseline MSE 1/6 = 0.167"
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for kind in KINDS:
        ax[0, 0].semilogy(cfg.lengths, [mse[(kind, t)] for t in cfg.lengths], "o-", label=kind)
    ax[0, 0].axhline(1 / 6, color="gray", ls="--", label="predict the mean")
    ax[0, 0].set(xlabel="sequence length T", ylabel="test MSE", title="adding problem")
    ax[0, 0].legend()
    ctx.figure("adding", fig, "Test MSE on the adding problem by length and cell.")
    t_max = cfg.lengths[-1]
    for kind in ("lstm", "gru"):
        ctx.claim(
            f"{kind.upper()} solves the adding problem at length {t_max}: test MSE below 10% of "
            "the 0.167 baseline",
            value=mse[(kind, t_max)],
            holds=mse[(kind, t_max)] < 0.1 / 6,
            insight="gating mechanisms",
        )
    ctx.claim(
        f"The vanilla RNN does not: at length {t_max} its test MSE stays above half the baseline",
        value=mse[("rnn", t_max)],
        holds=mse[("rnn", t_max)] > 0.5 / 6,
        insight="Temporal dependencies",
    )
    ctx.note(f"Recurrent layers computed with {'our cells' if cfg.ours else 'torch kernels'}.")


@lab("rnn", insights=["vanishing gradients in sequences", "gating mechanisms"])
def gradient_through_time(ctx: Lab) -> None:
    """How fast ||dL/dh_t|| decays with the distance from the loss, for each cell at init.

    Backpropagation through time multiplies by dh_{t+1}/dh_t at every step: for a tanh RNN
    that is diag(1 - h^2) W_hh, typically shrinking the gradient geometrically (Bengio,
    Simard & Frasconi 1994); the LSTM's cell path is multiplied by the forget gate only.
    The loss reads the last hidden state; the fitted slope of log ||dL/dh_t|| against the
    distance gives a decay rate per step.
    """
    cfg = ctx.config(length=(25, 100, 200), hidden=64, batch=32, seeds=(2, 5, 10))
    ctx.dataset(record("gaussian_sequences", length=cfg.length))
    norms = {}
    for kind in ctx.progress(KINDS, desc="cells"):
        runs = []
        for s in range(cfg.seeds):
            torch.manual_seed(ctx.seed + s)
            model = Recurrent(kind, 2, cfg.hidden).double()  # float32 underflows to 0 far back
            x = torch.randn(cfg.batch, cfg.length, 2, dtype=torch.float64)
            _, _, states = model(x, return_all_states=True)
            hs = states[0]
            for h in hs:
                h.retain_grad()
            hs[-1].pow(2).sum().backward()
            runs.append([h.grad.norm().item() for h in reversed(hs)])  # index = distance
        norms[kind] = np.array(runs)
    dist = np.arange(cfg.length)
    rows, rates = [], {}
    for kind, g in norms.items():
        rel = g / g[:, :1]
        # fit over the distances where every seed's gradient is still representable
        ok = (rel > 1e-280).all(axis=0)
        ok[0] = False
        slopes = np.polyfit(dist[ok], np.log10(rel[:, ok]).T, 1)[0]
        rates[kind] = 10**slopes  # gradient factor per step
        rows.append(
            {
                "cell": kind,
                "factor_per_step": float(rates[kind].mean()),
                "relative_norm_at_distance_20": float(rel[:, min(20, cfg.length - 1)].mean()),
                f"relative_norm_at_distance_{cfg.length - 1}": float(rel[:, -1].mean()),
            }
        )
    ctx.table("decay", rows, note=f"PyTorch's default init, {cfg.seeds} seeds, loss = |h_T|^2")
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for kind, g in norms.items():
        ax[0, 0].semilogy(dist, (g / g[:, :1]).mean(0), label=kind)
    ax[0, 0].set(
        xlabel="distance T - t", ylabel="||dL/dh_t|| / ||dL/dh_T||", title="gradient through time"
    )
    ax[0, 0].legend()
    ctx.figure("bptt", fig, "Gradient norm against distance from the loss, at init.")
    d20 = min(20, cfg.length - 1)
    rnn20 = float((norms["rnn"][:, d20] / norms["rnn"][:, 0]).mean())
    ctx.claim(
        f"In a tanh RNN at init the gradient {d20} steps back is below 1e-2 of the last step's",
        value=rnn20,
        holds=rnn20 < 1e-2,
        insight="vanishing gradients in sequences",
        seeds=cfg.seeds,
    )
    mean, (lo, hi) = mean_ci(np.log10(rates["lstm"]) - np.log10(rates["rnn"]))
    ctx.claim(
        "The LSTM's gradient decays more slowly per step than the tanh RNN's",
        value=mean,
        holds=lo > 0,
        insight="gating mechanisms",
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail="value: log10(LSTM factor per step) - log10(RNN factor per step)",
    )


@lab("rnn", insights=["vanishing gradients in sequences"])
def exploding_and_clipping(ctx: Lab) -> None:
    """With large recurrent weights the gradient explodes; clipping its norm keeps training
    stable (Pascanu, Mikolov & Bengio 2013).

    A tanh RNN whose W_hh is scaled to spectral radius `radius` > 1 is trained on the adding
    problem, with and without clipping the global gradient norm to `clip`.
    """
    cfg = ctx.config(
        length=(20, 50, 100),
        hidden=64,
        radius=3.0,
        steps=(100, 800, 3000),
        batch=64,
        lr=1e-3,
        clip=1.0,
        seeds=(1, 3, 5),
    )
    ctx.dataset(record("adding_problem", length=cfg.length))
    results: dict[str, dict[str, list]] = {"none": {}, "clip": {}}
    curves = {}
    x_te, y_te = (
        torch.from_numpy(a) for a in adding_problem(2000, cfg.length, np.random.default_rng(99))
    )
    for mode in ctx.progress(["none", "clip"], desc="clipping"):
        finals, peaks = [], []
        for s in range(cfg.seeds):
            torch.manual_seed(ctx.seed + s)
            model = SequenceRegressor("rnn", 2, cfg.hidden)
            with torch.no_grad():
                w = model.rnn.weight_hh_l0
                w.mul_(cfg.radius / torch.linalg.eigvals(w).abs().max())
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            rng = np.random.default_rng(ctx.seed + s)
            norms, losses = [], []
            for _ in range(cfg.steps):
                x, y = (torch.from_numpy(a) for a in adding_problem(cfg.batch, cfg.length, rng))
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                max_norm = cfg.clip if mode == "clip" else math.inf
                norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_norm).item())
                opt.step()
                losses.append(loss.item())
            with torch.no_grad():
                final = F.mse_loss(model(x_te), y_te).item()
            finals.append(final if math.isfinite(final) else math.inf)
            peaks.append(max(norms))
            if s == 0:
                curves[mode] = (norms, losses)
        results[mode] = {"final": finals, "peak": peaks}
        ctx.log(
            step=None, mode=mode, final=float(np.median(finals)), peak_grad=float(np.max(peaks))
        )
    rows = [
        {
            "clipping": mode,
            "median_final_test_mse": float(np.median(r["final"])),
            "max_gradient_norm": float(np.max(r["peak"])),
        }
        for mode, r in results.items()
    ]
    ctx.table(
        "clipping",
        rows,
        note=f"spectral radius {cfg.radius}, length {cfg.length}, {cfg.seeds} seeds",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for mode, (norms, losses) in curves.items():
        ax[0, 0].semilogy(norms, lw=0.8, label=mode)
        ax[0, 1].semilogy(losses, lw=0.8, label=mode)
    ax[0, 0].set(title="gradient norm (before clipping)", xlabel="step")
    ax[0, 1].set(title="training loss", xlabel="step")
    ax[0, 0].legend()
    ctx.figure("clipping", fig, "Gradient norms and losses with and without clipping.")
    peak = float(np.max(results["none"]["peak"]))
    ctx.claim(
        f"With W_hh at spectral radius {cfg.radius} the gradient norm exceeds 100 during training",
        value=peak,
        holds=peak > 100,
        seeds=cfg.seeds,
    )
    ctx.note("Recurrent layer computed with the torch kernel (nn.RNN), proven equal to rnn_cell.")
    a, b = np.median(results["clip"]["final"]), np.median(results["none"]["final"])
    ctx.claim(
        f"Clipping the gradient norm to {cfg.clip} ends with a lower median test MSE than "
        "no clipping",
        value=float(b - a) if math.isfinite(b) else math.inf,
        holds=a < b,
        seeds=cfg.seeds,
        detail=f"median test MSE: clipped {a:.4g}, unclipped {b:.4g}",
    )


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, ours: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = (
            Recurrent("lstm", embed, hidden, layers)
            if ours
            else nn.LSTM(embed, hidden, layers, batch_first=True)
        )
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor, state=None):
        h, state = self.rnn(self.embed(idx), state)
        return self.head(h), state


@torch.no_grad()
def sample(
    model: CharLSTM, corpus, prompt: str, n: int, gen: torch.Generator, temperature: float = 0.8
) -> str:
    idx = corpus.encode(prompt)[None]
    logits, state = model(idx)
    out = []
    for _ in range(n):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen)
        out.append(int(nxt))
        logits, state = model(nxt[None], state)
    return prompt + corpus.decode(out)


@lab("rnn", insights=["Temporal dependencies"])
def char_language_model(ctx: Lab) -> None:
    """An LSTM character language model on Tiny Shakespeare: validation loss in nats per
    character, against a unigram and a bigram model of the same text, and samples."""
    cfg = ctx.config(
        corpus=("guide", "tinyshakespeare", "tinyshakespeare"),
        embed=64,
        hidden=(128, 256, 512),
        layers=(1, 1, 2),
        seq=(32, 64, 128),
        batch=32,
        steps=(60, 2000, 10000),
        lr=3e-3,
        eval_batches=(5, 20, 50),
        ours=False,
    )
    corpus = char_corpus(cfg.corpus)
    ctx.dataset(corpus.record)
    v = len(corpus.vocab)
    # baselines from counts on the training split, scored on the validation split
    uni = torch.bincount(corpus.train, minlength=v).double() + 1
    uni_nats = float(-(torch.log(uni / uni.sum())[corpus.val]).mean())
    big = torch.ones(v, v, dtype=torch.float64)
    big.index_put_(
        (corpus.train[:-1], corpus.train[1:]),
        torch.ones(len(corpus.train) - 1, dtype=torch.float64),
        accumulate=True,
    )
    logp = torch.log(big / big.sum(1, keepdim=True))
    bi_nats = float(-logp[corpus.val[:-1], corpus.val[1:]].mean())
    torch.manual_seed(ctx.seed)
    model = CharLSTM(v, cfg.embed, cfg.hidden, cfg.layers, cfg.ours)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr / 10)
    gen = torch.Generator().manual_seed(ctx.seed)

    @torch.no_grad()
    def val_loss() -> float:
        g = torch.Generator().manual_seed(1234)
        losses = []
        for _ in range(cfg.eval_batches):
            x, y = corpus.batch("val", cfg.batch, cfg.seq, g)
            logits, _ = model(x)
            losses.append(F.cross_entropy(logits.reshape(-1, v), y.reshape(-1)).item())
        return float(np.mean(losses))

    curve = []
    for step in ctx.progress(range(1, cfg.steps + 1), desc="steps"):
        x, y = corpus.batch("train", cfg.batch, cfg.seq, gen)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, cfg.steps // 10) == 0:
            curve.append((step, loss.item(), val_loss()))
            ctx.log(step=step, train_loss=curve[-1][1], val_loss=curve[-1][2])
    final = val_loss()
    ctx.metric("val_nats_per_char", final)
    ctx.metric("val_bits_per_char", final / math.log(2))
    ctx.table(
        "models",
        [
            {"model": "unigram", "val_nats_per_char": uni_nats},
            {"model": "bigram", "val_nats_per_char": bi_nats},
            {"model": f"LSTM {cfg.layers}x{cfg.hidden}", "val_nats_per_char": final},
        ],
        note=f"{cfg.steps} steps of {cfg.batch} x {cfg.seq} characters",
    )
    text = sample(
        model, corpus, corpus.decode(corpus.val[:20]), 300, torch.Generator().manual_seed(ctx.seed)
    )
    ctx.table("sample", [{"temperature": 0.8, "text": text}])
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    steps, tr, va = zip(*curve, strict=True)
    ax[0, 0].plot(steps, tr, "o-", label="train (batch)")
    ax[0, 0].plot(steps, va, "s-", label="validation")
    ax[0, 0].axhline(bi_nats, color="gray", ls="--", label="bigram")
    ax[0, 0].set(xlabel="step", ylabel="nats / char", title="character LSTM")
    ax[0, 0].legend()
    ctx.figure("char_lm", fig, "Training and validation loss of the character LSTM.")
    ctx.claim(
        "The LSTM's validation loss is below the bigram model's: it uses more than one "
        "character of context",
        value=final,
        holds=final < bi_nats,
        detail=f"unigram {uni_nats:.3f}, bigram {bi_nats:.3f} nats/char",
    )
    ctx.note(f"Sample: {text[:200]!r}")
    ctx.note(f"LSTM computed with {'our cells' if cfg.ours else 'the torch kernel (nn.LSTM)'}.")
