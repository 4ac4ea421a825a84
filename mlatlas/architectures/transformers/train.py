"""Training recipes shared by the labs and the benchmarks of topic 7.

`train_char_gpt` is the character-GPT recipe used by the `char_gpt` lab and by
``benchmarks/charlm.py``: Muon (Jordan et al. 2024) on the blocks' matrices and AdamW on the
embeddings, gains and biases (or AdamW on everything, with decoupled weight decay on matrices
only), one linear warmup then cosine decay for both, gradient-norm clip 1, optional bf16
autocast on CPU. `CHAR_GPT_SETTINGS` are its (smoke, default, full) settings, `CHAR_GPT_LONG`
the overrides of a 300-second run, `tuning_split` the held-out part of the training text
that chose them. `val_losses` scores a model on fixed validation windows, and
`clip_members` clips each ensemble member's gradient norm on its own.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlatlas.architectures.transformers.models import GPT, GPTConfig
from mlatlas.core import per_scale
from mlatlas.core.data import CharCorpus
from mlatlas.core.ensemble import Ensemble, clip_members_
from mlatlas.core.seeding import fixed_generator
from mlatlas.core.train import fit
from mlatlas.foundations.optim.muon import Muon
from mlatlas.foundations.optim.schedules import warmup_cosine

# Default scale: the 43-second recipe of ``benchmarks/charlm.py`` (how it was chosen: there).
CHAR_GPT_SETTINGS: dict[str, Any] = dict(
    corpus=per_scale("guide", "tinyshakespeare", "tinyshakespeare"),
    block=per_scale(32, 64, 256),
    n_layer=per_scale(2, 4, 6),
    n_head=4,
    n_embd=per_scale(64, 128, 384),
    dropout=per_scale(0.0, 0.0, 0.2),
    batch=per_scale(16, 32, 64),
    # full: nanoGPT's GPU shape over-fits long before its 5000 steps under Muon; 1250 is where
    # the tuning split's loss was lowest in a 5000-step run on an H100 (1.438 nats/char)
    steps=per_scale(60, 300, 1250),
    optimizer="muon",  # Muon on the blocks' matrices, AdamW on the rest; or "adamw"
    lr=per_scale(3e-3, 1e-2, 1e-3),  # AdamW's peak lr (every parameter, or the non-matrix ones)
    muon_lr=0.02,  # Muon's peak lr (Jordan et al. 2024's default)
    warmup=0.05,  # share of the steps with a linear warmup from 1% of the peak lr
    final_lr=0.1,  # the cosine decay ends at this fraction of the peak lr
    clip=1.0,  # global gradient-norm clip before each step (0: none)
    eval_every=per_scale(30, 50, 250),
    eval_batches=per_scale(4, 10, 50),
    final_batches=per_scale(8, 160, 100),  # default: standard error below 0.005 nats/char
    kernel="torch",
    # bf16 autocast: ~50% slower per step at 128 dims on a 2-core CPU, ~2.8x faster at 384
    # (the full scale, which is meant for a GPU, where bf16 is the norm)
    bf16=per_scale(False, False, True),
    tune=False,  # train on the first 90% of the training text, score on its last 10%
)
# The 300-second recipe of ``benchmarks/charlm.py --long``: overrides of the default scale.
CHAR_GPT_LONG: dict[str, Any] = dict(block=128, steps=1500, final_batches=160)


def clip_members(ens: Ensemble, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip each ensemble member's gradient to global norm `max_norm` before every step of
    `optimizer`: the per-member equivalent of ``clip_grad_norm_`` (a clip over the stacked
    tensors would couple the members), so the ensemble still performs R independent runs."""

    def hook(*_: Any) -> None:
        clip_members_(ens.parameters(), max_norm)

    optimizer.register_step_pre_hook(hook)


class OptimizerChain:
    """Several optimizers stepped as one (Muon on the matrices, AdamW on the rest).

    It shows `fit` a single parameter group whose "lr" is a multiplier: each step, every
    inner group's lr is its peak lr (the one it was built with) times that multiplier, so one
    schedule drives optimizers with different learning rates. `clip` > 0 clips the global
    gradient norm of all their parameters before the step.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer, clip: float = 0.0) -> None:
        self.optimizers = optimizers
        self.clip = clip
        self.param_groups = [{"lr": 1.0}]
        self.peaks = [[g["lr"] for g in o.param_groups] for o in optimizers]

    def params(self) -> list[torch.Tensor]:
        return [p for o in self.optimizers for g in o.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self.params(), self.clip)
        scale = self.param_groups[0]["lr"]
        for o, peaks in zip(self.optimizers, self.peaks, strict=True):
            for g, peak in zip(o.param_groups, peaks, strict=True):
                g["lr"] = peak * scale
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "scale": self.param_groups[0]["lr"],
            "inner": [o.state_dict() for o in self.optimizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.param_groups[0]["lr"] = state["scale"]
        for o, s in zip(self.optimizers, state["inner"], strict=True):
            o.load_state_dict(s)


def char_gpt_optimizer(model: GPT, cfg: Any) -> OptimizerChain:
    """The recipe's optimizer. "adamw": AdamW (betas 0.9, 0.99) on everything, weight decay
    0.1 on matrices only. "muon": Muon (Nesterov momentum 0.95, no weight decay) on the
    blocks' matrices (attention projections, MLP), AdamW (betas 0.9, 0.99, no decay) on the
    embeddings (the tied head included), position table, gains and biases, as in Jordan et
    al. 2024, whose Muon is for hidden layers only."""
    if cfg.optimizer == "adamw":
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
        return OptimizerChain(
            torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99)), clip=cfg.clip
        )
    if cfg.optimizer != "muon":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; known: adamw, muon")
    hidden = [p for p in model.blocks.parameters() if p.dim() == 2]
    ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return OptimizerChain(
        Muon(hidden, lr=cfg.muon_lr, momentum=0.95, weight_decay=0.0),
        torch.optim.AdamW(rest, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0),
        clip=cfg.clip,
    )


def tuning_split(corpus: CharCorpus, fraction: float = 0.1) -> CharCorpus:
    """The corpus with its training text cut in two: the first 1 - `fraction` trains, the
    last `fraction` plays the validation split. Hyperparameters are chosen on this, so the
    reported validation split never picks them."""
    cut = int(len(corpus.train) * (1 - fraction))
    record = {**corpus.record, "split": f"tuning: last {fraction:.0%} of the training text"}
    return CharCorpus(corpus.train[:cut], corpus.train[cut:], corpus.vocab, record)


def _loss(model: GPT, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def val_losses(model: GPT, corpus: CharCorpus, cfg: Any, n_batches: int) -> list[float]:
    """Cross-entropy (nats/char) of each of `n_batches` validation batches; the windows are
    fixed (drawn from `fixed_generator`), so every run and every evaluation sees the same."""
    was_training = model.training
    model.eval()
    g = fixed_generator("char_gpt", "val", cfg.batch, cfg.block)
    dev = next(model.parameters()).device  # the windows are drawn where `g` lives, then moved
    out = [
        _loss(
            model, *(t.to(dev) for t in corpus.batch("val", cfg.batch, cfg.block, g)), cfg.bf16
        ).item()
        for _ in range(n_batches)
    ]
    model.train(was_training)
    return out


def train_char_gpt(
    cfg: Any,
    corpus: CharCorpus,
    gen: torch.Generator,
    ctx: Any = None,
    budget_s: float | None = None,
    device: str | torch.device | None = None,
) -> tuple[GPT, list[tuple[int, float, float]]]:
    """Train a GPT on a character corpus with `fit`; batches come from `gen`, the
    initialisation from the global generators (the caller seeds them). `ctx` (a `Lab`, or
    None) shows progress and logs losses. Returns the model and its curve of
    (step, seconds of training, mean validation loss over ``cfg.eval_batches`` fixed
    batches). `budget_s` stops the training after that many seconds (checked at evaluations).
    The model lives on `device` (default: the lab's device, else the CPU); batches are drawn
    from `gen` on its device (in a lab, the lab's device), and `fit` moves them to the model's."""
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
    if device is None:
        device = ctx.device if ctx is not None else "cpu"
    model = GPT(gcfg).to(device)
    opt = char_gpt_optimizer(model, cfg)
    # One multiplier for every optimizer: linear warmup from 1%, then cosine to final_lr.
    warmup = max(1, round(cfg.warmup * cfg.steps))
    schedule = warmup_cosine(1.0, warmup, cfg.steps, start_factor=0.01, eta_min=cfg.final_lr)
    # Seconds are wall clock, so not part of a result that resumes to the same numbers: each
    # evaluation records the seconds trained since the previous one in this process (the
    # evaluations themselves excluded), and the curve sums them (a resumed run then counts
    # the time it trained, not the time it was dead).
    clock = [time.perf_counter()]
    last = [float("nan")]  # this step's batch loss, for the log line only

    def loss_fn(m: GPT, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        loss = _loss(m, *b, cfg.bf16)
        last[0] = float(loss.detach())
        return loss

    def evaluate(step: int) -> tuple[float, float]:
        dt = time.perf_counter() - clock[0]
        n = cfg.eval_batches  # 0: no score (a run timed to its end scores once, afterwards)
        v = sum(val_losses(model, corpus, cfg, n)) / n if n else float("nan")
        clock[0] = time.perf_counter()
        if ctx is not None:
            ctx.log(step=step, train_loss=last[0], val_loss=v)
        return dt, v

    def out_of_time(evals: list[tuple[int, Any]]) -> bool:
        return budget_s is not None and sum(dt for _, (dt, _) in evals) > budget_s

    batches = (corpus.batch("train", cfg.batch, cfg.block, gen) for _ in itertools.count())
    res = fit(
        model,
        opt,
        loss_fn,
        batches,
        cfg.steps,
        ctx=ctx,
        desc="steps",
        schedule=schedule,
        evaluate=evaluate,
        eval_every=cfg.eval_every,
        eval_last=True,
        stop=out_of_time,
    )
    seconds = itertools.accumulate(dt for _, (dt, _) in res.evals)
    curve = [(step, t, v) for (step, (_, v)), t in zip(res.evals, seconds, strict=True)]
    return model, curve
