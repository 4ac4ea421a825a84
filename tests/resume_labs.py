"""Scratch labs for the resume tests: a loss that samples its own noise, two optimizers
alternating within a step (a GAN), and a batch source that depends on the model being trained
(rollouts of a policy in a stateful environment). Imported by a test process inside
`isolated_registry`, or by a fresh interpreter that then runs the CLI (see `cli_command`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlatlas.core import Lab, fit, lab, per_scale

TOPIC, INSIGHT = "optim", "learning rate scheduling"
bce = nn.functional.binary_cross_entropy_with_logits


def cli_command(*args: str) -> list[str]:
    """A command line that registers these labs, then runs ``mlatlas <args>``."""
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import resume_labs; "
        "from mlatlas.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-c", code, *args]


@lab(TOPIC, insights=[INSIGHT])
def noisy_regression(ctx: Lab) -> None:
    """Regression on inputs perturbed inside the loss by noise from the fit's generator."""
    cfg = ctx.config(steps=per_scale(150, 150, 150), seeds=2, sigma=0.5)
    c = ctx.claim("the fit lowers the loss", quantity="last / first loss", direction="<", margin=1)
    for rep in ctx.replicates(cfg.seeds):
        g = rep.generator("data")
        x = torch.randn(256, 8, generator=g)
        y = x @ torch.randn(8, generator=g)
        model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)

        def loss_fn(m: nn.Module, idx: torch.Tensor, noise: torch.Generator, x=x, y=y):
            eps = torch.randn(len(idx), 8, generator=noise)  # drawn inside the step
            return ((m(x[idx] + cfg.sigma * eps).squeeze(-1) - y[idx]) ** 2).mean()

        gb = rep.generator("batches")
        batches = iter(lambda gb=gb: torch.randint(0, 256, (32,), generator=gb), None)
        res = fit(
            model,
            opt,
            loss_fn,
            batches,
            cfg.steps,
            ctx=ctx,
            desc=f"rep{rep.id}",
            log_every=10,
            noise=rep.generator("eps"),
            evaluate=lambda s, m=model: float(m[2].weight.detach().norm()),
            eval_every=25,
        )
        c.add(rep.id, float(res.losses[-10:].mean() / res.losses[:10].mean()))
        ctx.metric(f"losses_{rep.id}", res.losses[::10].tolist())
        ctx.metric(f"evals_{rep.id}", res.evals)


@lab(TOPIC, insights=[INSIGHT])
def alternating_gan(ctx: Lab) -> None:
    """A 1-D GAN: discriminator then generator updates in every step, z from the fit."""
    cfg = ctx.config(steps=per_scale(150, 150, 150), seeds=2)
    c = ctx.claim("G's mean moves to 3", quantity="|mean(G(z)) - 3|", direction="<", margin=3)
    for rep in ctx.replicates(cfg.seeds):
        gan = nn.ModuleDict(
            {
                "g": nn.Linear(2, 1),
                "d": nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1)),
            }
        )
        opt_d = torch.optim.Adam(gan["d"].parameters(), lr=2e-3, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(gan["g"].parameters(), lr=2e-3, betas=(0.5, 0.999))

        def d_loss(m: nn.ModuleDict, real: torch.Tensor, noise: torch.Generator):
            fake = m["g"](torch.randn(len(real), 2, generator=noise)).detach()
            lr, lf = m["d"](real), m["d"](fake)
            return bce(lr, torch.ones_like(lr)) + bce(lf, torch.zeros_like(lf))

        def g_loss(m: nn.ModuleDict, real: torch.Tensor, noise: torch.Generator):
            lf = m["d"](m["g"](torch.randn(len(real), 2, generator=noise)))
            return bce(lf, torch.ones_like(lf))

        def reals():
            while True:  # the global generator: checkpointed with the fit
                yield 3.0 + 0.5 * torch.randn(64, 1)

        res = fit(
            gan,
            (opt_d, opt_g),
            (d_loss, g_loss),
            reals(),
            cfg.steps,
            ctx=ctx,
            desc=f"gan{rep.id}",
            log_every=10,
            noise=rep.generator("z"),
        )
        with torch.no_grad():
            z = torch.randn(512, 2, generator=rep.generator("probe"))
            c.add(rep.id, abs(float(gan["g"](z).mean()) - 3.0))
        ctx.metric(f"losses_{rep.id}", res.losses[::10].tolist())


class WalkEnv:
    """A 1-D random walk with a drift the agent picks; its position is state to checkpoint."""

    def __init__(self, g: torch.Generator) -> None:
        self.g, self.pos = g, torch.zeros(16)

    def step(self, action: torch.Tensor) -> torch.Tensor:
        self.pos = (self.pos + action + 0.1 * torch.randn(16, generator=self.g)).clamp(-5, 5)
        return -(self.pos - 2.0).abs()  # reward: near 2

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos.clone(), "g": self.g.get_state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.pos = s["pos"].clone()
        self.g.set_state(s["g"])


class Rollouts:
    """A batch source that runs the current policy in `env`: not replayable, so stateful."""

    def __init__(self, policy: nn.Module, env: WalkEnv, g: torch.Generator) -> None:
        self.policy, self.env, self.g, self.collected = policy, env, g, 0

    def __iter__(self) -> Rollouts:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        obs = self.env.pos.clone().unsqueeze(-1)
        with torch.no_grad():
            mean = self.policy(obs).squeeze(-1)
        action = mean + 0.3 * torch.randn(16, generator=self.g)
        reward = self.env.step(action)
        self.collected += 1
        return obs, action, reward

    def state_dict(self) -> dict[str, Any]:
        return {"g": self.g.get_state(), "collected": self.collected}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.g.set_state(s["g"])
        self.collected = int(s["collected"])


@lab(TOPIC, insights=[INSIGHT])
def rollout_policy(ctx: Lab) -> None:
    """REINFORCE-style updates on rollouts the policy being trained collects."""
    cfg = ctx.config(steps=per_scale(150, 150, 150))
    c = ctx.claim("the policy reaches 2", quantity="|mean position - 2|", direction="<", margin=2)
    rep = next(ctx.replicates(1))
    policy = nn.Linear(1, 1)
    env = WalkEnv(rep.generator("env"))
    source = Rollouts(policy, env, rep.generator("actions"))

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        obs, action, reward = batch
        logp = -((action - m(obs).squeeze(-1)) ** 2) / (2 * 0.3**2)
        return -(logp * (reward - reward.mean())).mean()

    opt = torch.optim.SGD(policy.parameters(), lr=0.05)
    res = fit(policy, opt, loss_fn, source, cfg.steps, ctx=ctx, log_every=10, state={"env": env})
    c.add(0, abs(float(env.pos.mean()) - 2.0))
    ctx.metric("losses", res.losses[::10].tolist())
    ctx.metric("collected", source.collected)
    ctx.metric("position", env.pos.tolist())
