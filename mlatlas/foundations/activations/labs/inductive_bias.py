"""Lab: ReLU nets are piecewise linear and extrapolate linearly; tanh nets flatten out."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from mlatlas.core import Lab, fit, lab, new_figure, per_scale
from mlatlas.core.data import FUNCTIONS_1D, record
from mlatlas.core.ensemble import make_ensemble
from mlatlas.foundations.activations.functions import mlp
from mlatlas.foundations.backprop.pieces import count_linear_pieces

FLAT = 1e-12  # a slope ratio of exactly 0 (flat extrapolation) counts as this, not as a failure
SHOWN = {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU"}


def derivatives(model: torch.nn.Module, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f and f' of a 1-D net on `grid`, by autograd (float64, through our phi')."""
    x = torch.tensor(grid, dtype=torch.float64)[:, None].requires_grad_()
    y = model(x)
    (d1,) = torch.autograd.grad(y.sum(), x)
    return y.detach().cpu().numpy()[:, 0], d1.cpu().numpy()[:, 0]


def second_differences(model: torch.nn.Module, grid: np.ndarray, h: float) -> np.ndarray:
    """f(x + h) - 2 f(x) + f(x - h) of a 1-D net at every grid point (float64)."""
    x = torch.tensor(grid, dtype=torch.float64)[:, None]
    with torch.no_grad():
        up, mid, down = (model(x + s)[:, 0].cpu().numpy() for s in (h, 0.0, -h))
    return up - 2 * mid + down


def kink_bound(widths: list[int]) -> int:
    """The most kinks a ReLU net with these hidden widths can have on a line: a unit of layer
    l is linear on each of the pieces the layers below leave, so it crosses zero at most once
    in each, adding at most (kinks so far + 1) kinks."""
    kinks = 0
    for w in widths:
        kinks += w * (kinks + 1)
    return kinks


def bent_points(model: torch.nn.Module, grid: np.ndarray) -> int:
    """Grid points where the second difference (step = the grid spacing) is not 0 to rounding
    (1e-9 of max(1, max |f|)). A piecewise-linear f has at most 2 per kink (a kink bends the
    two differences around it); a smooth, curved f bends at every point."""
    with torch.no_grad():
        scale = max(1.0, model(torch.tensor(grid, dtype=torch.float64)[:, None]).abs().max().item())
    d2 = second_differences(model, grid, grid[1] - grid[0])
    return int(np.sum(~(np.abs(d2) <= 1e-9 * scale)))  # NaN counts as bent


def kink_ratio(model: torch.nn.Module, grid: np.ndarray, h: float = 1e-2) -> float:
    """max |second difference| / step^2 at step h/10 over the same at step h, folded to >= 1.

    For a smooth f both tend to max |f''| (ratio ~ 1); at a kink with slope jump J the
    quotient is about J / step, so a tenth of the step gives a ratio of 5-10."""
    q = [np.abs(second_differences(model, grid, s)).max() / s**2 for s in (h, h / 10)]
    r = q[1] / q[0]
    return float(max(r, 1 / r))


@lab("activations", insights=["inductive biases"])
def inductive_bias(ctx: Lab) -> None:
    """ReLU nets are piecewise linear and extrapolate linearly; tanh nets flatten out.

    A ReLU network is a continuous piecewise-linear map (each unit adds kinks where its
    pre-activation crosses zero), so beyond its last kink it continues as a straight line;
    a tanh network is smooth and its units saturate as |x| grows. Each activation fits the
    same 64 noise-free samples of a 1-D function on [-1, 1] per seed (the sample positions and
    the init vary with the seed); the seeds train as one batched ensemble (full-batch Adam).

    Changed from the earlier version: "ReLU fits are piecewise linear while tanh fits are
    smooth" follows from the function class, so it is a check per activation on every fitted
    net, but the old checks could not fail (autograd's f'' of a ReLU mask is 0 for any weights;
    min |f''| > 0 holds for a tanh net that is almost a straight line). They now measure the
    fitted output by finite differences on 6001 points of [-3, 3]. ReLU: the second
    difference vanishes (to 1e-9 of the output's scale) except at no more than 2 points per
    kink the architecture allows (a hidden unit crosses zero at most once on each piece the
    layers below leave: 32 + 32 x 33 = 1088 kinks for two layers of 32); a smooth net bends at
    all 6001. tanh, GELU: max |f(x+h) - 2f(x) + f(x-h)| / h^2 changes by less than 2x from
    h = 1e-2 to 1e-3 (both tend to max |f''|), while at a kink it grows 5-10x. The tests feed
    each check the other kind of net and see it fail. The two extrapolation claims are
    experiments on the per-seed slope ratio, tested on log10; an exactly flat extrapolation
    counts as a ratio of 1e-12.
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
    rows, fits, shape = [], {}, {}
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
        shape[name] = []
        for rep in reps:
            net = ens.member(rep.id)
            y, d1 = derivatives(net, grid)
            curv = np.abs(np.diff(y, 2)) / (grid[1] - grid[0]) ** 2
            ratio = max(np.abs(d1[far]).mean() / np.abs(d1[inside]).mean(), FLAT)
            bent, kinky = bent_points(net, grid), kink_ratio(net, grid)
            shape[name].append((bent, kinky))
            rows.append(
                {
                    "activation": name,
                    "seed": rep.id,
                    "pieces_in_[-1,1]": count_linear_pieces(y[inside], grid[inside]),
                    "curved_share_in_[-1,1]": float(np.mean(curv[inside[1:-1]] > 1e-3)),
                    "bent_grid_points": bent,
                    "kink_ratio": kinky,
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
        "curved = |second difference| > 1e-3 on the grid (a ReLU kink counts as curved); "
        "bent = second difference not 0 to rounding; kink ratio: see the checks",
    )

    most = 2 * kink_bound([cfg.width] * cfg.depth)
    for name in cfg.activations:
        bent, kinky = np.array(shape[name], dtype=float).T
        if name == "relu":
            ctx.check(
                f"Every fitted ReLU net is piecewise linear within its architecture's bound: its "
                f"grid second differences vanish except at <= {most} points (2 per possible kink)",
                float(bent.max()),
                direction="<=",
                bound=most,
                quantity=f"most bent points of {len(grid)} on [-3, 3] over {len(reps)} nets",
            )
        else:
            ctx.check(
                f"Every fitted {SHOWN.get(name, name)} net is smooth: shrinking the step of its "
                "second difference quotient from 1e-2 to 1e-3 changes the quotient's maximum "
                "by less than 2x (a kink multiplies it by 5-10)",
                float(kinky.max()),
                direction="<",
                bound=2.0,
                quantity=f"largest kink ratio over {len(reps)} nets, on [-3, 3]",
            )

    fig, ax = new_figure(1, 1, size=(7, 4))
    ax[0, 0].plot(grid, f(grid), color="black", lw=2, label="target (data only in [-1, 1])")
    for name, y in fits.items():
        ax[0, 0].plot(grid, y, label=name)
    ax[0, 0].axvspan(-1, 1, color="gray", alpha=0.1)
    ax[0, 0].set(ylim=(-4, 4), title="fits and extrapolation (seed 0)", xlabel="x")
    ax[0, 0].legend(fontsize=7)
    ctx.figure("extrapolation", fig, "What each activation does inside and outside the data.")
