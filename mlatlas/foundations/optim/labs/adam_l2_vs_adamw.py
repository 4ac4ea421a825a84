"""Adam + L2 vs AdamW: how much weight decay each weight feels, by its gradient scale."""

from __future__ import annotations

import math

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record
from mlatlas.foundations.optim.optimizers import Adam, AdamW


@lab("optim", insights=["learning rate scheduling"])
def adam_l2_vs_adamw(ctx: Lab) -> None:
    """With L2 in Adam, weights with large gradients are barely decayed; AdamW decays all alike.

    Adam + L2 adds lambda w to the gradient and then divides by sqrt(v), so the decay each
    weight feels is lambda w / sqrt(v): weak where gradients are large. AdamW shrinks w by
    (1 - eta lambda) every step, whatever the gradients (Loshchilov & Hutter 2019). Here
    weights receive pure-noise gradients of scales from 1e-3 to 1e1 plus the decay, so
    any shrinkage comes from the decay alone.

    AdamW's part is algebra, so it is a check: its Adam step does not depend on w here, so
    two AdamW runs from w_0 = 1 and w_0 = 0 fed the same gradients differ by exactly
    (1 - eta lambda)^T at every gradient scale. (Before, the check was the noisy log|w_T| of
    one run against T log(1 - eta lambda) within 5%; that mixed the decay with the random
    Adam steps.) Adam + L2's shrinkage depends on the random gradients, so its claim is an
    experiment over seeds: per seed, the ratio of the mean log-shrinkage of the smallest-
    gradient weights to that of the largest-gradient weights.
    """
    cfg = ctx.config(
        scales=[1e-3, 1e-2, 1e-1, 1.0, 10.0],
        per_scale=per_scale(100, 1000, 10000),
        steps=per_scale(200, 2000, 10000),
        lr=1e-3,
        weight_decay=0.5,
        seeds=per_scale(3, 10, 20),
    )
    ctx.dataset(record("noise_gradients", scales=cfg.scales, per_scale=cfg.per_scale))
    scales = torch.tensor(cfg.scales, dtype=torch.float64).repeat_interleave(cfg.per_scale)
    decay = (1 - cfg.lr * cfg.weight_decay) ** cfg.steps
    ratio_c = ctx.claim(
        f"Adam + L2 decays weights with small gradients (scale {cfg.scales[0]:g}) at least 10x "
        f"more than weights with large gradients (scale {cfg.scales[-1]:g})",
        quantity=f"-mean log|w_T| over the {cfg.per_scale} weights of one gradient scale; "
        f"a = scale {cfg.scales[0]:g}, b = scale {cfg.scales[-1]:g}",
        direction=">",
        margin=10.0,
        paired=True,
        log=True,
    )
    shrink: dict[str, list[np.ndarray]] = {"adam_l2": [], "adamw": []}
    worst = 0.0
    for rep in ctx.replicates(cfg.seeds):
        gen = rep.generator("gradient noise")
        w_l2 = torch.ones_like(scales, requires_grad=True)
        w_dw = torch.stack([torch.ones_like(scales), torch.zeros_like(scales)]).requires_grad_()
        opt_l2 = Adam([w_l2], lr=cfg.lr, weight_decay=cfg.weight_decay)
        opt_dw = AdamW([w_dw], lr=cfg.lr, weight_decay=cfg.weight_decay)
        for _ in range(cfg.steps):
            g = scales * torch.randn(scales.shape, generator=gen, dtype=torch.float64)
            w_l2.grad, w_dw.grad = g, g.expand_as(w_dw).clone()  # same gradients for both
            opt_l2.step()
            opt_dw.step()
        diff = (w_dw[0] - w_dw[1]).detach()  # the part of w_T that came from w_0 = 1
        worst = max(worst, float((diff / decay - 1).abs().max()))
        for name, w in (("adam_l2", w_l2.detach()), ("adamw", w_dw[0].detach())):
            lw = torch.log(w.abs().clamp_min(1e-300)).reshape(len(cfg.scales), -1).mean(1)
            shrink[name].append(-lw.cpu().numpy())
        s = shrink["adam_l2"][-1]
        ratio_c.add(rep.id, s[0], s[-1])
        ctx.log(step=rep.id, ratio=float(s[0] / s[-1]))
    ctx.check(
        f"AdamW shrinks every weight by (1 - eta lambda)^T whatever its gradient scale: runs "
        f"from w_0 = 1 and w_0 = 0 fed the same gradients differ by (1 - eta lambda)^T = "
        f"{decay:.4g} to 1e-9 (relative) at every scale",
        worst,
        direction="<",
        bound=1e-9,
        quantity="largest |(w_T(w_0=1) - w_T(w_0=0)) / (1 - eta lambda)^T - 1| over weights, "
        "scales and seeds",
    )
    expected = -cfg.steps * math.log(1 - cfg.lr * cfg.weight_decay)
    mean = {k: np.mean(v, axis=0) for k, v in shrink.items()}
    rows = [
        {
            "gradient_scale": s,
            "shrink_adam_l2": float(mean["adam_l2"][i]),
            "shrink_adamw": float(mean["adamw"][i]),
            "shrink_decay_only": expected,
        }
        for i, s in enumerate(cfg.scales)
    ]
    ctx.table(
        "shrinkage",
        rows,
        note=f"shrink = -mean log|w_T|, w starts at 1; {cfg.steps} steps; lr {cfg.lr}; "
        f"mean over {cfg.seeds} seeds",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.6))
    for name, marker, label in (("adam_l2", "o", "Adam + L2"), ("adamw", "s", "AdamW")):
        for v in shrink[name]:
            ax[0, 0].semilogx(
                cfg.scales, v, marker, color="C0" if name == "adam_l2" else "C1", alpha=0.3, ms=3
            )
        ax[0, 0].semilogx(
            cfg.scales,
            mean[name],
            marker + "-",
            label=label,
            color="C0" if name == "adam_l2" else "C1",
        )
    ax[0, 0].axhline(expected, color="gray", ls="--", label="(1 - eta lambda)^T")
    ax[0, 0].set(
        xlabel="gradient scale", ylabel="-log |w_T|  (shrinkage)", title="weight decay felt"
    )
    ax[0, 0].legend()
    ctx.figure("decay", fig, "How much each weight shrinks, by its gradient scale (dots: seeds).")
