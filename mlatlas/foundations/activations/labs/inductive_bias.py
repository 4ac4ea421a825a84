"""Lab: ReLU nets are piecewise linear and extrapolate linearly; tanh nets flatten out."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from mlatlas.core import Lab, fit, lab, new_figure, per_scale
from mlatlas.core.data import FUNCTIONS_1D, record
from mlatlas.core.ensemble import make_ensemble
from mlatlas.foundations.activations.functions import mlp

FLAT = 1e-12  # a slope ratio of exactly 0 (flat extrapolation) counts as this, not as a failure
SHOWN = {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU"}


def count_pieces(y: np.ndarray, x: np.ndarray, tol: float = 1e-6) -> int:
    """Linear pieces of a sampled function: 1 + the number of slope changes above `tol`."""
    slopes = np.diff(y) / np.diff(x)
    return 1 + int(np.sum(np.abs(np.diff(slopes)) > tol * max(1.0, np.abs(slopes).max())))


def derivatives(model: torch.nn.Module, grid: np.ndarray) -> tuple[np.ndarray, ...]:
    """f, f' and f'' of a 1-D net on `grid`, by autograd (float64, through our phi')."""
    x = torch.tensor(grid, dtype=torch.float64)[:, None].requires_grad_()
    y = model(x)
    (d1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x, allow_unused=True) if d1.requires_grad else (None,)
    d2 = torch.zeros_like(x) if d2 is None else d2
    return tuple(t.detach().cpu().numpy()[:, 0] for t in (y, d1, d2))


@lab("activations", insights=["inductive biases"])
def inductive_bias(ctx: Lab) -> None:
    """ReLU nets are piecewise linear and extrapolate linearly; tanh nets flatten out.

    A ReLU network is a continuous piecewise-linear map (each unit adds kinks where its
    pre-activation crosses zero), so beyond its last kink it continues as a straight line;
    a tanh network is smooth and its units saturate as |x| grows. Each activation fits the
    same 64 noise-free samples of a 1-D function on [-1, 1] per seed (the sample positions and
    the init vary with the seed); the seeds train as one batched ensemble (full-batch Adam).

    Changed from the earlier version: "ReLU fits are piecewise linear while tanh fits are
    smooth" follows from the function class, not from the data, so it is now a check per
    activation on every fitted net: a ReLU net's second derivative (autograd) is exactly 0
    at every grid point; a tanh or GELU net's is nonzero at every grid point of [-1, 1]. The
    share of curved grid points and the number of linear pieces stay in the table. The two
    extrapolation claims are experiments on the per-seed slope ratio, tested on log10; an
    exactly flat extrapolation counts as a ratio of 1e-12.
    """
    cfg = ctx.config(
        function="wiggle",
        n_train=64,
        width=32,
        depth=2,
        steps=per_scale(300, 3000, 10000),
        lr=0.01,
        seeds=per_scale(3, 10, 20),
        activations=["relu", "tanh", "gelu"],
    )
    f = FUNCTIONS_1D[cfg.function]
    ctx.dataset(record(f"function_1d:{cfg.function}", n_train=cfg.n_train, domain=[-1, 1]))
    grid = np.linspace(-3, 3, 6001)
    inside = np.abs(grid) <= 1
    far = grid >= 2.5

    c_tanh = ctx.claim(
        "Far from the data (x in [2.5, 3]) tanh nets flatten: their mean |slope| is below 10% "
        "of that inside [-1, 1]",
        quantity="mean |f'| on [2.5, 3] / mean |f'| on [-1, 1] of the tanh fit, per seed",
        direction="<",
        margin=0.1,
        log=True,
    )
    c_relu = ctx.claim(
        "ReLU nets keep extrapolating linearly: their mean |slope| on [2.5, 3] is above 10% of "
        "that inside [-1, 1]",
        quantity="mean |f'| on [2.5, 3] / mean |f'| on [-1, 1] of the ReLU fit, per seed",
        direction=">",
        margin=0.1,
        log=True,
    )

    reps = list(ctx.replicates(cfg.seeds))
    xs = np.stack([np.sort(rep.rng("x").uniform(-1, 1, cfg.n_train)) for rep in reps])
    xt = torch.tensor(xs)[:, :, None]  # (R, N, 1): each seed its own sample positions
    yt = torch.tensor(f(xs))[:, :, None]
    sizes = [1] + [cfg.width] * cfg.depth + [1]
    rows, fits, second = [], {}, {}
    for name in ctx.progress(cfg.activations, desc="activations"):
        ens = make_ensemble(
            lambda r, name=name: mlp(sizes, name).double(),
            len(reps),
            lambda r: reps[r].seed_torch("init"),
        )
        opt = torch.optim.Adam(ens.parameters(), lr=cfg.lr)

        def loss_fn(m, _batch):
            return ((m(xt, per_member=True) - yt) ** 2).mean(dim=(1, 2))

        fit(ens, opt, loss_fn, itertools.repeat(None), cfg.steps, ctx=ctx, desc=name)
        second[name] = []
        for rep in reps:
            y, d1, d2 = derivatives(ens.member(rep.id), grid)
            curv = np.abs(np.diff(y, 2)) / (grid[1] - grid[0]) ** 2
            ratio = max(np.abs(d1[far]).mean() / np.abs(d1[inside]).mean(), FLAT)
            second[name].append(np.abs(d2))
            rows.append(
                {
                    "activation": name,
                    "seed": rep.id,
                    "pieces_in_[-1,1]": count_pieces(y[inside], grid[inside]),
                    "curved_share_in_[-1,1]": float(np.mean(curv[inside[1:-1]] > 1e-3)),
                    "max_|f''|": float(np.abs(d2).max()),
                    "mean_|slope|_in_[-1,1]": float(np.abs(d1[inside]).mean()),
                    "mean_|slope|_on_[2.5,3]": float(np.abs(d1[far]).mean()),
                    "slope_ratio": float(ratio),
                    "train_rmse": float(
                        np.sqrt(np.mean((np.interp(xs[rep.id], grid, y) - f(xs[rep.id])) ** 2))
                    ),
                }
            )
            if name == "tanh":
                c_tanh.add(rep.id, ratio)
            elif name == "relu":
                c_relu.add(rep.id, ratio)
            if rep.id == 0:
                fits[name] = y
    ctx.table(
        "shapes",
        rows,
        note=f"{cfg.depth} hidden layers of {cfg.width}, full-batch Adam {cfg.steps} steps; "
        "curved = |second difference| > 1e-3 on the grid (a ReLU kink counts as curved)",
    )

    for name in cfg.activations:
        d2 = np.stack(second[name])
        if name == "relu":
            ctx.check(
                "Every fitted ReLU net is piecewise linear: its second derivative is exactly 0 "
                "at every grid point of [-3, 3]",
                float(d2.max()),
                direction="<=",
                bound=0.0,
                quantity=f"max |f''| over {len(grid)} grid points and {len(reps)} fitted nets",
            )
        else:
            ctx.check(
                f"Every fitted {SHOWN.get(name, name)} net is smooth and curved: its second "
                "derivative is nonzero at every grid point of [-1, 1] (no straight segment)",
                float(d2[:, inside].min()),
                direction=">",
                bound=0.0,
                quantity=f"min |f''| over {int(inside.sum())} grid points and {len(reps)} nets",
            )

    fig, ax = new_figure(1, 1, size=(7, 4))
    ax[0, 0].plot(grid, f(grid), color="black", lw=2, label="target (data only in [-1, 1])")
    for name, y in fits.items():
        ax[0, 0].plot(grid, y, label=name)
    ax[0, 0].axvspan(-1, 1, color="gray", alpha=0.1)
    ax[0, 0].set(ylim=(-4, 4), title="fits and extrapolation (seed 0)", xlabel="x")
    ax[0, 0].legend(fontsize=7)
    ctx.figure("extrapolation", fig, "What each activation does inside and outside the data.")
