"""Lab: depth buys compositional functions cheaply; gradient descent does not always find them."""

from __future__ import annotations

import math

import numpy as np
import torch

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import record, tent_iterate
from mlatlas.core.train import count_params, make_mlp, rmse
from mlatlas.foundations.backprop.pieces import count_linear_pieces
from mlatlas.foundations.backprop.stacked import StackedMLP, train_regression


def tent_network(k: int) -> torch.nn.Sequential:
    """A width-2, depth-k ReLU net that computes tent^k exactly on [0, 1] (Telgarsky 2016).

    tent(x) = 2 relu(x) - 4 relu(x - 1/2) on [0, 1]; each hidden layer holds
    (relu(u), relu(u - 1/2)) of the previous tent output u, so k layers compose k tents.
    """
    layers: list[torch.nn.Module] = []
    for i in range(k):
        lin = torch.nn.Linear(1 if i == 0 else 2, 2).double()
        with torch.no_grad():
            lin.weight.copy_(
                torch.tensor([[1.0], [1.0]]) if i == 0 else torch.tensor([[2.0, -4.0]] * 2)
            )
            lin.bias.copy_(torch.tensor([0.0, -0.5]))
        layers += [lin, torch.nn.ReLU()]
    out = torch.nn.Linear(2, 1).double()
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[2.0, -4.0]]))
        out.bias.zero_()
    return torch.nn.Sequential(*layers, out)


def shallow_error_floor(k: int, units: int, x: np.ndarray) -> float:
    """A lower bound, for every weight setting, on RMSE / std of a [1, units, 1] ReLU net
    against tent^k on the points x in [0, 1].

    Cut [0, 1] into disjoint windows. The net has at most `units` kinks, each inside at most
    one window, so on all but `units` windows it is one straight line, and its squared error
    there is at least that of the window's least-squares line; the smallest n - units of
    those minima sum to a lower bound. Two cuts, the larger bound kept: the 2^(k-1) teeth
    (on the continuum sqrt(1 - units / 2^(k-1)): each tooth's best line is the constant 1/2),
    and windows of width 2^-k centred on the target's 2^k - 1 kinks (better when units is
    close to the number of teeth).
    """
    y = tent_iterate(x, k)
    best = 0.0
    for n, shift in ((2 ** (k - 1), 0.0), (2**k, 0.5)):
        which = np.floor(x * n + shift).astype(int)
        errs = []
        for j in np.unique(which):
            xj, yj = x[which == j], y[which == j]
            line = np.polyval(np.polyfit(xj, yj, 1), xj) if len(xj) > 2 else yj
            errs.append(float(((yj - line) ** 2).sum()))
        straight = np.sort(errs)[: max(0, len(errs) - units)]
        best = max(best, float(np.sqrt(straight.sum() / len(x)) / np.std(y)))
    return best


@lab("backprop", insights=["Compositional function learning"])
def why_depth(ctx: Lab) -> None:
    """Depth buys compositional functions cheaply; gradient descent does not always find them.

    tent^k has 2^k linear pieces. A ReLU net of depth k and width 2 computes it exactly
    with 6k + 1 parameters, while a one-hidden-layer ReLU net with H units has at most
    H + 1 pieces on the line, so it needs 2^k - 1 units (Telgarsky 2016). The lab checks the
    construction (a hand-set net: checks, not experiments), then trains, with Adam from random
    inits, a shallow net of the construction's size, and deep-narrow against shallow-wide nets
    of equal size. Each seed draws its own training sample and inits; the seeds of one arm
    train together as one stacked model (float32). The deep-vs-shallow claim is tested on
    each seed's geometric mean over k of RMSE(deep) / RMSE(shallow).

    Changed from the earlier version: "a trained [1, 2k, 1] net cannot fit tent^k (RMSE above
    25% of the target's std)" was an experiment, but it holds for every weight setting: 2k
    kinks leave at least 2^(k-1) - 2k teeth on straight pieces, which bounds RMSE / std from
    below (sqrt(1 - 12/32) = 0.79 at k = 6; `shallow_error_floor` computes it on the test
    grid, 0.33 at the smoke scale's k = 4). It is now a check of the trained nets against
    that computed bound; the test feeds it an exact 2^k-unit interpolant (RMSE 0): it fails.
    """
    cfg = ctx.config(
        k=per_scale(4, 6, 8),
        train_ks=per_scale([2, 3], [2, 3, 4, 5], [2, 3, 4, 5, 6, 7]),
        width=16,
        seeds=per_scale(2, 5, 10),
        steps=per_scale(300, 3000, 20000),
        lr=0.01,
        n_train=512,
    )
    ctx.dataset(record("tent_iterate", n_train=cfg.n_train, domain=[0, 1]))
    K = cfg.k

    # 1. the construction, exactly ---------------------------------------------------
    grid = np.linspace(0, 1, 2 ** (K + 3) + 1)  # dyadic grid: contains every kink
    exact_rows = []
    for k in range(1, K + 1):
        net = tent_network(k)
        with torch.no_grad():
            out = net(torch.tensor(grid)[:, None]).cpu().numpy()[:, 0]
        exact_rows.append(
            {
                "k": k,
                "deep_params": count_params(net),
                "max_abs_error": float(np.abs(out - tent_iterate(grid, k)).max()),
                "linear_pieces": count_linear_pieces(out, grid),
                "shallow_units_needed": 2**k - 1,
                "shallow_params_needed": 3 * (2**k - 1) + 1,
            }
        )
    ctx.table("construction", exact_rows, note="width-2 ReLU net of depth k vs exact shallow size")
    last = exact_rows[-1]
    ctx.check(
        f"A width-2 depth-{K} ReLU net ({last['deep_params']} parameters) computes tent^{K} "
        "exactly",
        last["max_abs_error"],
        direction="<",
        bound=1e-9,
        quantity=f"max |net(x) - tent^{K}(x)| on a dyadic grid of {len(grid)} points",
    )
    ctx.check(
        f"Its output has all {2**K} linear pieces of tent^{K}",
        abs(last["linear_pieces"] - 2**K),
        direction="<=",
        bound=0,
        quantity=f"|linear pieces counted - 2^{K}| (counted: {last['linear_pieces']})",
    )

    # the experiments' claims, stated before training -----------------------------------
    p_con = 6 * K + 1
    deeper = ctx.claim(
        "Trained by Adam at equal parameter count, deep-narrow nets fit tent^k better than "
        "shallow-wide ones (RMSE ratio deep/shallow < 1)",
        quantity=f"per seed, geometric mean over k in {cfg.train_ks} of test RMSE; "
        f"a = deep (width {cfg.width}, depth k), b = shallow (same parameter count)",
        direction="<",
        margin=1.0,
        paired=True,
        log=True,
    )

    x_test = torch.linspace(0, 1, 4001)[:, None]
    models: dict[str, list[torch.nn.Sequential]] = {}
    xs = []
    for rep in ctx.replicates(cfg.seeds, desc="init"):
        xs.append(rep.rng("data").random(cfg.n_train))
        arms = {"shallow_equal": [1, 2 * K, 1], "deep_width2": [1] + [2] * K + [1]}
        for kk in cfg.train_ks:
            deep = [1] + [cfg.width] * kk + [1]
            arms[f"deep_{kk}"] = deep
            arms[f"shallow_{kk}"] = [1, (count_params(make_mlp(deep)) - 1) // 3, 1]
        for name, sizes in arms.items():
            rep.seed_torch(name)
            models.setdefault(name, []).append(make_mlp(sizes))
    x = torch.tensor(np.stack(xs), dtype=torch.float32)[:, :, None]  # (seeds, n_train, 1)

    def train_and_test(name: str, k: int) -> np.ndarray:
        """Per-seed test RMSE of arm `name` trained on tent^k (inputs centred to [-1, 1])."""
        net = StackedMLP(models[name])
        y = torch.tensor(tent_iterate(x.cpu().numpy(), k))
        fr = train_regression(net, 2 * x - 1, y, cfg.steps, cfg.lr, ctx=ctx, desc=name)
        with torch.no_grad():
            pred = net(2 * x_test - 1)[:, :, 0].cpu().numpy()
        target = tent_iterate(x_test.cpu().numpy()[:, 0], k)
        e = np.array([rmse(p, target) for p in pred])
        e[fr.diverged] = np.nan
        ctx.log(step=k, arm=name, test_rmse=float(np.nanmean(e)))
        return e

    # 2. shallow net with the construction's parameter count -------------------------
    floor = float(np.std(tent_iterate(x_test.cpu().numpy(), K)))  # RMSE of the best constant
    bound = shallow_error_floor(K, 2 * K, x_test.cpu().numpy()[:, 0])
    shallow_eq = train_and_test("shallow_equal", K)
    deep_w2 = train_and_test("deep_width2", K)
    ctx.check(
        f"No one-hidden-layer ReLU net with the construction's {p_con} parameters ({2 * K} "
        f"units) can fit tent^{K}: its at most {2 * K} kinks leave most of the target's teeth "
        f"on straight pieces, so every weight setting has test RMSE >= {bound:.3f} x "
        f"std(tent^{K}) (shallow_error_floor); every trained net obeys the bound",
        float(np.min(shallow_eq / floor)),  # NaN (a diverged net) fails the check
        direction=">=",
        bound=bound,
        quantity=f"smallest per-seed test RMSE / std(tent^{K}) of the trained [1, {2 * K}, 1] "
        "nets; bound computed on the test grid",
    )
    ctx.metric("shallow_equal_params_error_floor", bound)
    ctx.metric("constant_predictor_rmse", floor)
    ctx.metric("shallow_equal_params_rmse", float(np.nanmean(shallow_eq)))
    ctx.metric("deep_width2_trained_rmse", float(np.nanmean(deep_w2)))
    ctx.note(
        f"The construction's own shape (width 2, depth {K}) trained by Adam from random init "
        f"reaches test RMSE {np.nanmean(deep_w2):.4f} (best seed {np.nanmin(deep_w2):.4f}; "
        f"constant predictor {floor:.4f}); the exact solution exists with RMSE 0."
    )

    # 3. trained deep-narrow vs shallow-wide at equal parameter count ----------------------
    rows, logs = [], {"deep": [], "shallow": []}
    for kk in ctx.progress(cfg.train_ks, desc="trained"):
        d, s = train_and_test(f"deep_{kk}", kk), train_and_test(f"shallow_{kk}", kk)
        logs["deep"].append(np.log10(d))
        logs["shallow"].append(np.log10(s))
        rows += [
            {
                "k": kk,
                "seed": i,
                "deep": f"{kk}x{cfg.width}",
                "deep_params": count_params(models[f"deep_{kk}"][0]),
                "shallow_units": models[f"shallow_{kk}"][0][0].out_features,
                "shallow_params": count_params(models[f"shallow_{kk}"][0]),
                "deep_rmse": float(d[i]),
                "shallow_rmse": float(s[i]),
            }
            for i in range(cfg.seeds)
        ]
    # per seed, geometric mean over k (NaN if a run diverged: imputed by the claim)
    geo = {arm: 10 ** np.mean(v, axis=0) for arm, v in logs.items()}
    for i in range(cfg.seeds):
        deeper.add(i, geo["deep"][i], geo["shallow"][i])
    ratio = geo["deep"] / geo["shallow"]
    ctx.metric("mean_over_seeds_geo_rmse_ratio_deep_over_shallow", float(np.nanmean(ratio)))
    ctx.table("trained_equal_params", rows, note="Adam, full batch, cosine decay; test on 4001 pts")

    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    ax[0, 0].plot(grid, tent_iterate(grid, K), lw=1)
    ax[0, 0].set(title=f"tent^{K}: exact from width 2 x depth {K}", xlabel="x")
    ks = list(cfg.train_ks)
    for key, label in (("deep_rmse", f"deep, width {cfg.width}"), ("shallow_rmse", "shallow")):
        m = [np.mean([r[key] for r in rows if r["k"] == q]) for q in ks]
        ax[0, 1].semilogy(ks, m, "o-", label=label)
    ax[0, 1].axhline(1 / math.sqrt(12), color="gray", ls="--", label="constant predictor")
    ax[0, 1].set(title="trained, equal parameters", xlabel="k", ylabel="test RMSE")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("depth", fig, f"tent^k and trained fits up to k={ks[-1]} (mean over seeds).")
    ctx.note("Trained with PyTorch (float32), the seeds of each arm stacked.")
