"""Labs of topic 7: attention for seq2seq, position matters, char-GPT on Tiny Shakespeare,
parallelism, attention maps, ViT.

The GPT trains with PyTorch's fused attention kernel and bf16 autocast on CPU for speed
(`kernel`, `bf16` settings); the from-scratch attention is proven equal to that kernel in
the tests, and the attention-map lab reads its weights from our implementation.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import GPT, Encoder, GPTConfig, ViT
from mlatlas.core import Lab, lab, new_figure
from mlatlas.core.data import char_corpus, image_classification, record
from mlatlas.core.train import accuracy, count_params, fit_classifier
from mlatlas.foundations.optim.schedules import warmup_cosine

# ------------------------------------------------------------------------------------
# seq2seq with and without attention
# ------------------------------------------------------------------------------------


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; with `attention`, each decoder step reads a context vector
    c_t = sum_j a_tj h_j, a_t = softmax_j(v^T tanh(W_s s_t + W_h h_j)) (Bahdanau et al. 2015);
    without, the decoder sees only the encoder's final state."""

    def __init__(self, vocab: int, d: int, attention: bool) -> None:
        super().__init__()
        self.attention = attention
        self.embed = nn.Embedding(vocab + 1, d)  # token `vocab` is the start symbol
        self.encoder = nn.GRU(d, d, batch_first=True)
        self.decoder = nn.GRUCell(2 * d if attention else d, d)
        self.w_s, self.w_h, self.v = (
            nn.Linear(d, d, bias=False),
            nn.Linear(d, d),
            nn.Linear(d, 1, bias=False),
        )
        self.out = nn.Linear(2 * d if attention else d, vocab)
        self.vocab = vocab

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        h_enc, s = self.encoder(self.embed(src))
        s = s[0]
        keys = self.w_h(h_enc)
        logits = []
        for t in range(tgt_in.shape[1]):
            e = self.embed(tgt_in[:, t])
            if self.attention:
                a = torch.softmax(self.v(torch.tanh(self.w_s(s)[:, None] + keys))[..., 0], dim=1)
                ctx = (a[..., None] * h_enc).sum(1)
                s = self.decoder(torch.cat([e, ctx], -1), s)
                logits.append(self.out(torch.cat([s, ctx], -1)))
            else:
                s = self.decoder(e, s)
                logits.append(self.out(s))
        return torch.stack(logits, 1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor) -> torch.Tensor:
        tok = torch.full((len(src), 1), self.vocab)
        out = []
        for _ in range(src.shape[1]):
            nxt = self(src, torch.cat([tok, *out], 1))[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
        return torch.cat(out, 1)


@lab("transformers", insights=["Query-key-value attention"])
def seq2seq_attention(ctx: Lab) -> None:
    """Reversing a sequence with an RNN encoder-decoder, with and without attention, as the
    sequence grows: without attention everything must pass through one fixed-size vector."""
    cfg = ctx.config(
        lengths=([6], [8, 16, 24], [10, 20, 40]),
        vocab=10,
        d=64,
        steps=(150, 1200, 5000),
        batch=64,
        lr=3e-3,
        n_test=500,
    )
    ctx.dataset(record("reverse_task", vocab=cfg.vocab, lengths=cfg.lengths))
    rows, acc = [], {}
    for length in ctx.progress(cfg.lengths, desc="lengths"):
        gen_test = torch.Generator().manual_seed(10**6 + length)
        src_te = torch.randint(0, cfg.vocab, (cfg.n_test, length), generator=gen_test)
        for attention in (False, True):
            torch.manual_seed(ctx.seed)
            model = Seq2Seq(cfg.vocab, cfg.d, attention)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
            gen = torch.Generator().manual_seed(ctx.seed + length)
            for _ in range(cfg.steps):
                src = torch.randint(0, cfg.vocab, (cfg.batch, length), generator=gen)
                tgt = src.flip(1)
                tgt_in = torch.cat([torch.full((cfg.batch, 1), cfg.vocab), tgt[:, :-1]], 1)
                loss = F.cross_entropy(model(src, tgt_in).reshape(-1, cfg.vocab), tgt.reshape(-1))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            pred = model.greedy(src_te)
            a = float((pred == src_te.flip(1)).float().mean())
            acc[(attention, length)] = a
            rows.append({"length": length, "attention": attention, "token_accuracy": a})
            ctx.log(step=length, attention=attention, token_accuracy=a)
    ctx.table(
        "reverse",
        rows,
        note=f"{cfg.steps} Adam steps; greedy decoding of {cfg.n_test} test sequences",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for attention in (False, True):
        ax[0, 0].plot(
            cfg.lengths,
            [acc[(attention, t)] for t in cfg.lengths],
            "o-",
            label="attention" if attention else "no attention",
        )
    ax[0, 0].set(
        xlabel="sequence length",
        ylabel="token accuracy",
        title="reverse a sequence",
        ylim=(0, 1.02),
    )
    ax[0, 0].legend()
    ctx.figure("seq2seq", fig, "Token accuracy of GRU encoder-decoders with and without attention.")
    t = cfg.lengths[-1]
    gap = acc[(True, t)] - acc[(False, t)]
    ctx.claim(
        f"At length {t}, attention raises token accuracy by at least 10 points over the "
        "fixed-vector encoder-decoder",
        value=gap,
        holds=gap >= 0.10,
    )


# ------------------------------------------------------------------------------------
# position matters
# ------------------------------------------------------------------------------------


class OrderClassifier(nn.Module):
    def __init__(self, vocab: int, d: int, heads: int, layers: int, positions: str, max_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = Encoder(d, heads, layers, max_len, positions)
        self.head = nn.Linear(d, 2)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(idx)).mean(1))


def order_task(n: int, length: int, vocab: int, gen: torch.Generator):
    """Sequences of filler tokens 2.. with one token 0 and one token 1; label: does 0 come
    before 1? The multiset of tokens is the same either way, so only order can tell."""
    x = torch.randint(2, vocab, (n, length), generator=gen)
    pos = torch.stack([torch.randperm(length, generator=gen)[:2] for _ in range(n)])
    rows = torch.arange(n)
    x[rows, pos[:, 0]] = 0
    x[rows, pos[:, 1]] = 1
    return x, (pos[:, 0] < pos[:, 1]).long()


@lab("transformers", insights=["positional encoding"])
def position_matters(ctx: Lab) -> None:
    """Without position encodings self-attention cannot see order; with them it can.

    Attention with no positions is permutation-equivariant (checked exactly below), so with
    mean pooling the output is a function of the set of tokens. The task asks whether token
    0 comes before token 1: the same set either way.
    """
    cfg = ctx.config(
        length=(12, 16, 32),
        vocab=12,
        d=32,
        heads=4,
        layers=2,
        steps=(150, 1500, 5000),
        batch=64,
        lr=1e-3,
        positions=["none", "learned", "sinusoidal", "rope"],
        n_test=2000,
    )
    ctx.dataset(record("order_task", length=cfg.length, vocab=cfg.vocab))
    torch.manual_seed(ctx.seed)
    enc = Encoder(cfg.d, cfg.heads, cfg.layers, cfg.length, "none").double().eval()
    x = torch.randn(4, cfg.length, cfg.d, dtype=torch.float64)
    perm = torch.randperm(cfg.length)
    err = (enc(x)[:, perm] - enc(x[:, perm])).abs().max().item()
    ctx.claim(
        "Without position encodings, self-attention is permutation-equivariant: permuting the "
        "input permutes the output (max |difference| < 1e-10)",
        value=err,
        holds=err < 1e-10,
    )
    x_te, y_te = order_task(cfg.n_test, cfg.length, cfg.vocab, torch.Generator().manual_seed(99))
    rows, acc = [], {}
    for positions in ctx.progress(cfg.positions, desc="encodings"):
        torch.manual_seed(ctx.seed)
        model = OrderClassifier(cfg.vocab, cfg.d, cfg.heads, cfg.layers, positions, cfg.length)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        gen = torch.Generator().manual_seed(ctx.seed)
        for _ in range(cfg.steps):
            x, y = order_task(cfg.batch, cfg.length, cfg.vocab, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        acc[positions] = accuracy(model, x_te, y_te)
        rows.append({"positions": positions, "test_accuracy": acc[positions]})
        ctx.log(step=None, positions=positions, test_accuracy=acc[positions])
    ctx.table("order_task", rows, note=f"{cfg.steps} Adam steps; chance is 0.5")
    fig, ax = new_figure(1, 1, size=(5, 3.4))
    ax[0, 0].bar(list(acc), list(acc.values()))
    ax[0, 0].axhline(0.5, color="gray", ls="--")
    ax[0, 0].set(ylim=(0.4, 1.0), ylabel="test accuracy", title="does 0 come before 1?")
    ctx.figure("positions", fig, "Order task accuracy by position encoding.")
    ctx.claim(
        "With no position encoding the order task stays at chance (accuracy <= 0.55)",
        value=acc["none"],
        holds=acc["none"] <= 0.55,
    )
    best = max(acc[p] for p in cfg.positions if p != "none")
    ctx.claim(
        "Every position encoding (learned, sinusoidal, rotary) solves it: accuracy >= 0.9 for each",
        value=min(acc[p] for p in cfg.positions if p != "none"),
        holds=all(acc[p] >= 0.9 for p in cfg.positions if p != "none"),
        detail=f"best {best:.3f}",
    )


# ------------------------------------------------------------------------------------
# char-GPT
# ------------------------------------------------------------------------------------


def train_char_gpt(cfg, corpus, seed: int, progress=None, log=None, budget_s: float | None = None):
    """Train a GPT on a character corpus; returns (model, curve of (step, seconds, val_loss))."""
    torch.manual_seed(seed)
    gcfg = GPTConfig(
        vocab=len(corpus.vocab),
        block_size=cfg.block,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        positions="learned",
        kernel=cfg.kernel,
    )
    model = GPT(gcfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.99),
    )
    schedule = warmup_cosine(
        cfg.lr, cfg.steps // 20, cfg.steps, start_factor=0.01, eta_min=cfg.lr / 10
    )
    gen = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        g = torch.Generator().manual_seed(1234)
        losses = []
        for _ in range(cfg.eval_batches):
            x, y = corpus.batch("val", cfg.batch, cfg.block, g)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x)
            losses.append(
                F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
            )
        model.train()
        return float(np.mean(losses))

    curve, t0 = [], time.perf_counter()
    steps = progress(range(cfg.steps)) if progress else range(cfg.steps)
    for step in steps:
        for g in opt.param_groups:
            g["lr"] = schedule(step)
        x, y = corpus.batch("train", cfg.batch, cfg.block, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            v = val_loss()
            curve.append((step + 1, time.perf_counter() - t0, v))
            if log:
                log(step + 1, loss.item(), v)
            if budget_s is not None and curve[-1][1] > budget_s:
                break
    return model, curve


CHAR_GPT_SETTINGS = dict(
    corpus=("guide", "tinyshakespeare", "tinyshakespeare"),
    block=(32, 128, 256),
    n_layer=(2, 4, 6),
    n_head=4,
    n_embd=(64, 128, 384),
    dropout=(0.0, 0.0, 0.2),
    batch=(16, 32, 64),
    steps=(60, 1500, 5000),
    lr=(3e-3, 2e-3, 1e-3),
    eval_every=(30, 100, 250),
    eval_batches=(4, 20, 50),
    kernel="torch",
    bf16=True,
)


@lab("transformers", insights=["parallelizable sequence modeling", "Query-key-value attention"])
def char_gpt(ctx: Lab) -> None:
    """A character-level GPT on Tiny Shakespeare in about five minutes of 2-core CPU.

    nanoGPT's README gives a CPU recipe (4 layers, 4 heads, 128 dims, context 64) that
    reaches a validation loss of about 1.88 nats per character in a few minutes; this lab
    uses a 4-layer, 128-dim model with context 128, bf16 autocast and AdamW with warmup and
    cosine decay for 1500 steps (about five minutes on 2 cores).
    """
    cfg = ctx.config(**CHAR_GPT_SETTINGS)
    corpus = char_corpus(cfg.corpus)
    ctx.dataset(corpus.record)

    def log(step: int, train: float, val: float) -> None:
        ctx.log(step=step, train_loss=train, val_loss=val)

    model, curve = train_char_gpt(
        cfg, corpus, ctx.seed, lambda it: ctx.progress(it, desc="steps"), log
    )
    final = curve[-1][2]
    ctx.metric("val_nats_per_char", final)
    ctx.metric("train_seconds", curve[-1][1])
    ctx.metric("params", count_params(model))
    first_below = next((t for _, t, v in curve if v <= 1.88), math.inf)
    ctx.metric("seconds_to_val_1.88", first_below)
    ctx.table(
        "curve",
        [{"step": s, "seconds": t, "val_loss": v} for s, t, v in curve],
        note=f"{count_params(model)} parameters; {cfg.batch} x {cfg.block} characters per step",
    )
    model.eval()
    prompt = corpus.encode(corpus.decode(corpus.val[:32]))[None]
    text = corpus.decode(
        model.generate(
            prompt,
            300,
            temperature=0.8,
            top_k=20,
            generator=torch.Generator().manual_seed(ctx.seed),
        )[0]
    )
    ctx.table("sample", [{"temperature": 0.8, "top_k": 20, "text": text}])
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    ax[0, 0].plot([t for _, t, _ in curve], [v for *_, v in curve], "o-")
    ax[0, 0].axhline(1.88, color="gray", ls="--", label="nanoGPT CPU recipe, ~1.88")
    ax[0, 0].set(xlabel="seconds", ylabel="validation nats / char", title="char-GPT")
    ax[0, 0].legend()
    ctx.figure("char_gpt", fig, "Validation loss of the character GPT against wall time.")
    ctx.claim(
        "The character GPT ends below nanoGPT's CPU-recipe validation loss of 1.88 nats/char",
        value=final,
        holds=final < 1.88,
        insight="parallelizable sequence modeling",
        detail=f"{curve[-1][1]:.0f} s of training; first below 1.88 at {first_below:.0f} s",
    )
    ctx.note(f"Sample: {text[:200]!r}")
    ctx.note(f"Attention kernel: {cfg.kernel}; bf16 autocast: {cfg.bf16}.")


# ------------------------------------------------------------------------------------
# parallelism
# ------------------------------------------------------------------------------------


@lab("transformers", insights=["parallelizable sequence modeling"])
def parallelism(ctx: Lab) -> None:
    """Training throughput (tokens per second) of a transformer and an LSTM with about the
    same number of parameters, as the sequence grows.

    An LSTM must process positions one after another; a transformer layer processes all
    positions at once with matrix products, at a cost growing with T^2 in the attention.
    Both are timed on the same batches, interleaved, median of several repeats.
    """
    cfg = ctx.config(
        lengths=([16, 64], [16, 32, 64, 128, 256], [64, 128, 256, 512, 1024]),
        tokens=(2048, 8192, 16384),
        d=128,
        layers=2,
        repeats=(3, 5, 7),
    )
    ctx.dataset(record("random_tokens", vocab=64))
    torch.manual_seed(ctx.seed)
    gpt = GPT(
        GPTConfig(
            vocab=64,
            block_size=max(cfg.lengths),
            n_layer=cfg.layers,
            n_head=4,
            n_embd=cfg.d,
            kernel="torch",
        )
    )
    # an LSTM stack with a similar parameter count: 4 (d_in h + h^2 + 2h) per layer
    target = count_params(gpt) - 64 * cfg.d
    hidden = int((-(cfg.d + 2) + math.sqrt((cfg.d + 2) ** 2 + target)) / 2)
    lstm = nn.ModuleDict(
        {
            "embed": nn.Embedding(64, cfg.d),
            "rnn": nn.LSTM(cfg.d, hidden, cfg.layers, batch_first=True),
            "head": nn.Linear(hidden, 64),
        }
    )

    def step_gpt(x, y):
        F.cross_entropy(gpt(x).reshape(-1, 64), y.reshape(-1)).backward()

    def step_lstm(x, y):
        h, _ = lstm["rnn"](lstm["embed"](x))
        F.cross_entropy(lstm["head"](h).reshape(-1, 64), y.reshape(-1)).backward()

    rows = []
    for t in ctx.progress(cfg.lengths, desc="lengths"):
        b = max(1, cfg.tokens // t)
        x = torch.randint(0, 64, (b, t))
        times = {"transformer": [], "lstm": []}
        for rep in range(cfg.repeats + 1):
            for name, fn in (("transformer", step_gpt), ("lstm", step_lstm)):
                t0 = time.perf_counter()
                fn(x, x)
                if rep:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
        tps = {k: b * t / float(np.median(v)) for k, v in times.items()}
        rows.append(
            {
                "length": t,
                "batch": b,
                "transformer_tok_s": tps["transformer"],
                "lstm_tok_s": tps["lstm"],
                "ratio": tps["transformer"] / tps["lstm"],
            }
        )
        ctx.log(step=t, ratio=rows[-1]["ratio"])
    ctx.table(
        "throughput",
        rows,
        note=f"forward + backward; transformer {count_params(gpt)} params, "
        f"LSTM {count_params(lstm)}; "
        "absolute numbers depend on the machine, the ratio is what to read",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    ax[0, 0].loglog(
        [r["length"] for r in rows],
        [r["transformer_tok_s"] for r in rows],
        "o-",
        label="transformer",
    )
    ax[0, 0].loglog(
        [r["length"] for r in rows], [r["lstm_tok_s"] for r in rows], "s-", label="LSTM"
    )
    ax[0, 0].set(xlabel="sequence length", ylabel="tokens / s (train step)", title="throughput")
    ax[0, 0].legend()
    ctx.figure("throughput", fig, "Training tokens per second against sequence length.")
    mid = [r for r in rows if r["length"] >= 64]
    ctx.claim(
        "At sequence lengths >= 64, the transformer trains on more tokens per second than the "
        "LSTM of the same size",
        value=min(r["ratio"] for r in mid),
        holds=all(r["ratio"] > 1 for r in mid),
        detail="value: smallest transformer/LSTM throughput ratio at length >= 64 "
        "(same machine, same run)",
    )


# ------------------------------------------------------------------------------------
# attention maps
# ------------------------------------------------------------------------------------


@lab("transformers", insights=["Query-key-value attention"])
def attention_maps(ctx: Lab) -> None:
    """What attention learns to look at: an encoder trained to output each sequence reversed
    should attend from position i to position T - 1 - i."""
    cfg = ctx.config(
        length=(8, 12, 16), vocab=16, d=32, heads=1, steps=(200, 1500, 4000), batch=64, lr=2e-3
    )
    ctx.dataset(record("reverse_task", vocab=cfg.vocab, length=cfg.length))
    torch.manual_seed(ctx.seed)
    embed = nn.Embedding(cfg.vocab, cfg.d)
    enc = Encoder(cfg.d, cfg.heads, 1, cfg.length, "learned")
    head = nn.Linear(cfg.d, cfg.vocab)
    params = [*embed.parameters(), *enc.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(ctx.seed)
    for _ in ctx.progress(range(cfg.steps), desc="steps"):
        x = torch.randint(0, cfg.vocab, (cfg.batch, cfg.length), generator=gen)
        loss = F.cross_entropy(head(enc(embed(x))).reshape(-1, cfg.vocab), x.flip(1).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randint(0, cfg.vocab, (500, cfg.length), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = head(enc(embed(x), keep_weights=True))
    acc = float((out.argmax(-1) == x.flip(1)).float().mean())
    w = enc.blocks[0].last_weights.mean(0)  # (T, T), averaged over examples
    mirror = float(w.flip(1).diagonal().mean())
    ctx.metric("token_accuracy", acc)
    ctx.table(
        "attention",
        [
            {
                "token_accuracy": acc,
                "mean_weight_on_mirror_position": mirror,
                "uniform_weight": 1 / cfg.length,
            }
        ],
    )
    fig, ax = new_figure(1, 1, size=(4.5, 4))
    im = ax[0, 0].imshow(w.numpy(), cmap="viridis")
    ax[0, 0].set(xlabel="key position", ylabel="query position", title="attention weights")
    ax[0, 0].grid(False)
    fig.colorbar(im, ax=ax[0, 0])
    ctx.figure(
        "attention_map", fig, "Attention of the reversing encoder, averaged over 500 inputs."
    )
    ctx.claim(
        "Trained to reverse, the encoder puts most of each query's attention on the mirror "
        "position T - 1 - i (mean weight > 0.5)",
        value=mirror,
        holds=mirror > 0.5,
        detail=f"token accuracy {acc:.3f}; uniform attention would give {1 / cfg.length:.3f}",
    )


# ------------------------------------------------------------------------------------
# ViT
# ------------------------------------------------------------------------------------


@lab("transformers", insights=["parallelizable sequence modeling"])
def vit(ctx: Lab) -> None:
    """A vision transformer on MNIST and Fashion-MNIST: 7x7 patches as tokens, no convolution.

    Dosovitskiy et al. (2021) found ViTs need large data to beat CNNs; at this scale the
    comparison with LeNet-5 (topic 5) shows what the missing convolutional prior costs.
    """
    cfg = ctx.config(
        datasets=(["digits"], ["mnist", "fashion-mnist"], ["mnist", "fashion-mnist"]),
        patch=7,
        d=64,
        heads=4,
        layers=4,
        steps=(150, 2000, 10000),
        batch=128,
        lr=1e-3,
    )
    from mlatlas.architectures.cnn.models import LeNet5

    rows, acc = [], {}
    for name in ctx.progress(cfg.datasets, desc="datasets"):
        data = image_classification(name, ctx.rng, flatten=False, size=28)
        ctx.dataset(data.record)
        for kind in ("vit", "lenet5"):
            torch.manual_seed(ctx.seed)
            model = (
                ViT(28, cfg.patch, 1, cfg.d, cfg.heads, cfg.layers, data.n_classes)
                if kind == "vit"
                else LeNet5(data.n_classes)
            )
            sched = warmup_cosine(cfg.lr, cfg.steps // 20, cfg.steps, start_factor=0.1)
            fit_classifier(
                model,
                data.x_train,
                data.y_train,
                cfg.steps,
                cfg.batch,
                np.random.default_rng(ctx.seed),
                cfg.lr,
                schedule=sched,
            )
            acc[(name, kind)] = accuracy(model, data.x_test, data.y_test)
            rows.append(
                {
                    "dataset": name,
                    "model": kind,
                    "params": count_params(model),
                    "test_acc": acc[(name, kind)],
                }
            )
            ctx.log(step=None, dataset=name, model=kind, test_acc=acc[(name, kind)])
    ctx.table(
        "vit", rows, note=f"{cfg.steps} Adam steps with warmup + cosine, same budget for both"
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.4))
    for j, kind in enumerate(("vit", "lenet5")):
        ax[0, 0].bar(
            np.arange(len(cfg.datasets)) + 0.38 * j,
            [acc[(n, kind)] for n in cfg.datasets],
            0.36,
            label=kind,
        )
    ax[0, 0].set_xticks(np.arange(len(cfg.datasets)) + 0.19, cfg.datasets)
    ax[0, 0].set(ylim=(0.5, 1.0), ylabel="test accuracy")
    ax[0, 0].legend()
    ctx.figure("vit", fig, "ViT and LeNet-5 at the same training budget.")
    first = cfg.datasets[0]
    ctx.claim(
        f"The ViT reaches at least 95% test accuracy on {first} with patches as its only "
        "notion of space",
        value=acc[(first, "vit")],
        holds=acc[(first, "vit")] >= 0.95,
    )
    m = float(np.mean([acc[(n, "lenet5")] - acc[(n, "vit")] for n in cfg.datasets]))
    ctx.claim(
        "At this small scale the convolutional prior still wins: LeNet-5 beats the ViT on every "
        "dataset",
        value=m,
        holds=all(acc[(n, "lenet5")] > acc[(n, "vit")] for n in cfg.datasets),
        detail="value: mean accuracy difference LeNet-5 - ViT over the datasets",
    )
