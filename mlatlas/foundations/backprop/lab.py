"""Labs of topic 1: universal approximation, gradient flow at initialisation, why depth
helps, and the from-scratch engine trained side by side with PyTorch.

All data here is generated or ships with scikit-learn (digits), so these labs run on any
machine with no download.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mlatlas.core import Lab, bootstrap_ci, lab, new_figure, save_checkpoint, spearman
from mlatlas.core.data import FUNCTIONS_1D, load_digits, record, tent_iterate
from mlatlas.core.stats import geometric_mean_ci
from mlatlas.core.train import count_params, make_mlp, minibatches, rmse
from mlatlas.foundations.backprop.autograd import Tensor, cross_entropy, no_grad
from mlatlas.foundations.backprop.nn import ACTIVATIONS, MLP, SGD

# ------------------------------------------------------------------------------------
# universal approximation
# ------------------------------------------------------------------------------------


def fit_one_hidden_layer(
    x: torch.Tensor,
    y: torch.Tensor,
    width: int,
    n_seeds: int,
    steps: int,
    lr: float,
    generator: torch.Generator,
    init_slope: float | None = None,
) -> torch.nn.Module:
    """Train `n_seeds` independent one-hidden-layer tanh nets f(x) = W2 tanh(W1 x + b1) + b2
    at once: each weight tensor has a leading seed axis, and the summed loss gives every
    seed its own gradient (Adam is elementwise, so the runs do not interact).

    init_slope=None: nn.Linear's init, W1, b1 ~ U(-1, 1). A number s: each unit gets a slope
    W1 ~ N(0, s^2) and a centre c ~ U(-1, 1) on the input domain, b1 = -W1 c, so that the
    units' bends are spread over [-1, 1] at the sharpness of the target's features.
    """
    s, h = n_seeds, width
    bound2 = 1.0 / math.sqrt(h)  # nn.Linear's init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))

    def uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        return (2 * u - 1) * bound

    if init_slope is None:
        w1, b1 = uniform((s, 1, h), 1.0), uniform((s, 1, h), 1.0)
    else:
        w1 = torch.randn((s, 1, h), generator=generator, dtype=torch.float64) * init_slope
        b1 = -w1 * uniform((s, 1, h), 1.0)
    net = torch.nn.ParameterDict(
        {
            "w1": torch.nn.Parameter(w1),
            "b1": torch.nn.Parameter(b1),
            "w2": torch.nn.Parameter(uniform((s, h, 1), bound2)),
            "b2": torch.nn.Parameter(uniform((s, 1, 1), bound2)),
        }
    )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 100)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return torch.tanh(inp @ net["w1"] + net["b1"]) @ net["w2"] + net["b2"]

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = ((forward(x) - y) ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        opt.step()
        sched.step()
    net.forward = forward  # type: ignore[method-assign]
    return net


@lab("backprop", insights=["Compositional function learning"])
def universal_approximation(ctx: Lab) -> None:
    """One hidden layer of growing width fits a 1-D function ever more closely.

    Cybenko (1989) and Hornik (1991) proved that one hidden layer of enough sigmoidal units
    approximates any continuous function on a compact set. The theorem says nothing about
    how many units, nor whether training finds them; this lab measures test error against
    width after a fixed Adam budget, for two first-layer inits: nn.Linear's default
    (slopes U(-1, 1): on a 1-D input every unit starts almost linear) and units spread over
    the domain with slopes N(0, s^2), s = `init_slope`, chosen to match the width of the
    target's finest feature (sin(7 pi x) has period 2/7). The claims use the spread init.
    """
    cfg = ctx.config(
        function="wiggle",
        widths=([1, 4, 16], [1, 2, 4, 8, 16, 32, 64, 128], [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]),
        seeds=(1, 3, 5),
        steps=(300, 3000, 20000),
        lr=0.01,
        init_slope=10.0,
        n_train=256,
    )
    x_train = np.sort(ctx.rng.uniform(-1, 1, cfg.n_train))
    x_test = np.linspace(-1, 1, 1001)
    f = FUNCTIONS_1D[cfg.function]
    ctx.dataset(record(f"function_1d:{cfg.function}", n_train=cfg.n_train, domain=[-1, 1]))
    xt = torch.tensor(x_train, dtype=torch.float64)[None, :, None]
    yt = torch.tensor(f(x_train), dtype=torch.float64)[None, :, None]
    xs = torch.tensor(x_test, dtype=torch.float64)[None, :, None]
    target_std = float(np.std(f(x_test)))

    results: dict[str, list[dict]] = {"spread": [], "default": []}
    curves = {}
    gen = torch.Generator().manual_seed(ctx.seed)
    jobs = [(init, w) for init in results for w in cfg.widths]
    for init, width in ctx.progress(jobs, desc="widths"):
        slope = cfg.init_slope if init == "spread" else None
        net = fit_one_hidden_layer(xt, yt, width, cfg.seeds, cfg.steps, cfg.lr, gen, slope)
        with torch.no_grad():
            pred = net.forward(xs)[:, :, 0].numpy()  # (seeds, points)
        errs = np.sqrt(np.mean((pred - f(x_test)[None]) ** 2, axis=1))
        lo, hi = bootstrap_ci(errs)
        results[init].append(
            {
                "init": init,
                "width": width,
                "params": 3 * width + 1,
                "test_rmse": float(errs.mean()),
                "ci_low": lo,
                "ci_high": hi,
                "rmse/target_std": float(errs.mean() / target_std),
            }
        )
        if init == "spread":
            curves[width] = pred[0]
        ctx.log(step=width, init=init, test_rmse=float(errs.mean()))
    rows = results["spread"]
    ctx.table(
        "rmse_by_width",
        rows + results["default"],
        note=f"mean over {cfg.seeds} seeds, 95% bootstrap interval; spread: slopes "
        f"N(0, {cfg.init_slope}^2), centres U(-1, 1); default: nn.Linear's U(-1, 1)",
    )

    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    ax[0, 0].plot(x_test, f(x_test), color="black", lw=2.5, label="target")
    for w in cfg.widths[:: max(1, len(cfg.widths) // 4)]:
        ax[0, 0].plot(x_test, curves[w], lw=1.2, label=f"width {w}")
    ax[0, 0].scatter(x_train, f(x_train), s=4, color="gray", alpha=0.5)
    ax[0, 0].set(title="fits (spread init, seed 0)", xlabel="x", ylabel="f(x)")
    ax[0, 0].legend(fontsize=7)
    for init, res in results.items():
        widths = np.array([r["width"] for r in res])
        ax[0, 1].loglog(widths, [r["test_rmse"] for r in res], "o-", label=f"{init} init")
        ax[0, 1].fill_between(
            widths, [r["ci_low"] for r in res], [r["ci_high"] for r in res], alpha=0.25
        )
    ax[0, 1].set(title="test RMSE vs hidden width", xlabel="hidden units", ylabel="RMSE")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("fits_and_error", fig, "One-hidden-layer tanh fits and test RMSE by width.")

    widths = np.array([r["width"] for r in rows])
    means = np.array([r["test_rmse"] for r in rows])
    rho = spearman(widths, means)
    ctx.metric("spearman_width_rmse", rho)
    ctx.claim(
        "Test error falls as the hidden layer widens (Spearman rho of width vs RMSE <= -0.9)",
        value=rho,
        holds=rho <= -0.9,
        seeds=cfg.seeds,
    )
    ratio = rows[0]["test_rmse"] / rows[-1]["test_rmse"]
    ctx.metric("rmse_ratio_narrowest_to_widest", ratio)
    default_ratio = results["default"][0]["test_rmse"] / results["default"][-1]["test_rmse"]
    ctx.metric("rmse_ratio_narrowest_to_widest_default_init", default_ratio)
    ctx.claim(
        f"The widest net (width {rows[-1]['width']}) has at least 10x lower test RMSE than "
        f"width {rows[0]['width']}",
        value=ratio,
        holds=ratio >= 10,
        interval=(rows[0]["ci_low"] / rows[-1]["ci_high"], rows[0]["ci_high"] / rows[-1]["ci_low"]),
        seeds=cfg.seeds,
        detail="value: RMSE(narrowest) / RMSE(widest); interval from the two bootstrap intervals",
    )
    ctx.note(
        f"With nn.Linear's default init the same budget gives a ratio of {default_ratio:.3g} "
        f"(widest RMSE {results['default'][-1]['test_rmse']:.3g}): existence of an "
        "approximation is not the same as finding it in a fixed number of steps."
    )
    ctx.note("Trained with PyTorch (float64, Adam with cosine decay), all seeds batched.")


# ------------------------------------------------------------------------------------
# gradient flow at initialisation
# ------------------------------------------------------------------------------------

INITS = {
    # name: (activation, weight sampler given fan_in n), biases are zero
    "sigmoid, U(+-1/sqrt(n))": ("sigmoid", lambda r, n, shape: r.uniform(-1, 1, shape) / n**0.5),
    "tanh, Xavier normal": ("tanh", lambda r, n, shape: r.standard_normal(shape) / n**0.5),
    "ReLU, He normal": ("relu", lambda r, n, shape: r.standard_normal(shape) * (2 / n) ** 0.5),
    "ReLU, 2.5 x He": ("relu", lambda r, n, shape: r.standard_normal(shape) * 2.5 * (2 / n) ** 0.5),
}


def layer_gradient_norms(
    x: np.ndarray, y: np.ndarray, depth: int, width: int, init: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per layer of a freshly initialised deep MLP: ||dL/dz_l|| (the backpropagated signal at
    each pre-activation z_l) and ||dL/dW_l||_F, computed with this topic's autograd engine
    (cross-entropy on one batch)."""
    activation, sample = INITS[init]
    sizes = [x.shape[1]] + [width] * depth + [int(y.max()) + 1]
    net = MLP(sizes, rng, activation=activation)
    for layer in net.layers:
        n_out, n_in = layer.weight.shape
        layer.weight.data = sample(rng, n_in, (n_out, n_in))
        layer.bias.data = np.zeros(n_out)
    act = ACTIVATIONS[activation]
    h, pre = Tensor(x), []
    for i, layer in enumerate(net.layers):
        z = layer(h).retain_grad()
        pre.append(z)
        h = act(z) if i < len(net.layers) - 1 else z
    cross_entropy(h, y).backward()
    signal = np.array([np.linalg.norm(z.grad) for z in pre])
    weight = np.array([np.linalg.norm(layer.weight.grad) for layer in net.layers])
    return signal, weight


@lab("backprop", insights=["gradient flow", "vanishing/exploding gradients"])
def gradient_flow(ctx: Lab) -> None:
    """Per-layer gradients at initialisation: vanishing, preserved, exploding.

    Backpropagation multiplies the signal dL/dz by one Jacobian per layer,
    dL/dz_l = phi'(z_l) * W_{l+1}^T dL/dz_{l+1}. If that shrinks it by a factor g < 1 per
    layer, layer 1 sees g^L of it (vanishing); g > 1 explodes. For ReLU with weights of
    standard deviation s * sqrt(2 / fan_in), He et al. (2015) show g = s: He init (s = 1)
    keeps the signal level. The weight gradient dL/dW_l = dL/dz_l h_{l-1}^T also carries
    the forward activations h, which for ReLU grow by the same s per layer, so its norm can
    stay level while the signal explodes; the lab reports both.
    """
    cfg = ctx.config(depth=(6, 20, 50), width=(64, 256, 512), batch=256, seeds=(2, 5, 10))
    x, y = load_digits()
    ctx.dataset(record("sklearn-digits"))
    idx = ctx.rng.choice(len(x), cfg.batch, replace=False)
    xb = (x[idx] - x.mean(0)) / (x.std(0) + 1e-8)
    yb = y[idx]

    signal: dict[str, np.ndarray] = {}
    weight: dict[str, np.ndarray] = {}
    for init in ctx.progress(list(INITS), desc="inits"):
        runs = [
            layer_gradient_norms(xb, yb, cfg.depth, cfg.width, init, np.random.default_rng(s))
            for s in ctx.seeds(cfg.seeds)
        ]
        signal[init] = np.stack([r[0] for r in runs])  # (seeds, depth + 1)
        weight[init] = np.stack([r[1] for r in runs])
        ctx.log(step=None, init=init, signal_layer1=float(signal[init][:, 0].mean()))

    rows = []
    gains, ratios = {}, {}
    layers = np.arange(1, cfg.depth + 1)  # hidden layers 1..L (the output layer excluded)
    for init in INITS:
        s_hidden = signal[init][:, : cfg.depth]
        # least-squares slope of log10 ||dL/dz_l|| against l, per seed; backward gain = 10^-slope
        slopes = np.polyfit(layers, np.log10(s_hidden).T, 1)[0]
        gains[init] = 10 ** (-slopes)
        ratios[init] = s_hidden[:, 0] / s_hidden[:, -1]
        w_ratio = weight[init][:, 0] / weight[init][:, cfg.depth - 1]
        rows.append(
            {
                "init": init,
                "signal_ratio_1_to_L": float(np.exp(np.log(ratios[init]).mean())),
                "signal_gain_per_layer": float(gains[init].mean()),
                "weight_grad_ratio_1_to_L": float(np.exp(np.log(w_ratio).mean())),
            }
        )
    ctx.table(
        "gradient_norms",
        rows,
        note=f"depth {cfg.depth}, width {cfg.width}, {cfg.seeds} seeds; signal = ||dL/dz_l||; "
        "ratios are geometric means over seeds; gain is the backward factor per layer from a "
        "log-linear fit",
    )

    fig, ax = new_figure(1, 2, size=(10, 3.8))
    for panel, (data, label) in enumerate(
        ((signal, "log10 ||dL/dz_l||  (signal)"), (weight, "log10 ||dL/dW_l||  (weights)"))
    ):
        a = ax[0, panel]
        for init, g in data.items():
            lg = np.log10(g)
            ls = np.arange(1, lg.shape[1] + 1)
            a.plot(ls, lg.mean(0), "o-", ms=3, label=init)
            a.fill_between(ls, lg.min(0), lg.max(0), alpha=0.2)
        a.set(xlabel="layer (1 = input side)", ylabel=label)
    ax[0, 0].legend(fontsize=7)
    ctx.figure("grad_norm_by_layer", fig, "Backpropagated signal and weight gradients at init.")

    v, ci = geometric_mean_ci(ratios["sigmoid, U(+-1/sqrt(n))"])
    ctx.claim(
        f"Sigmoid with PyTorch's default init: the signal reaching layer 1 is below 1e-3 of "
        f"that at layer {cfg.depth} (vanishing)",
        value=v,
        holds=ci[1] < 1e-3,
        insight="vanishing/exploding gradients",
        interval=ci,
        seeds=cfg.seeds,
    )
    v, ci = geometric_mean_ci(ratios["ReLU, He normal"])
    ctx.claim(
        f"ReLU with He init: the signal at layer 1 is within a factor 10 of layer {cfg.depth}'s",
        value=v,
        holds=ci[0] > 0.1 and ci[1] < 10,
        insight="gradient flow",
        interval=ci,
        seeds=cfg.seeds,
    )
    v, ci = geometric_mean_ci(ratios["ReLU, 2.5 x He"])
    ctx.claim(
        f"ReLU with 2.5x He std: the signal at layer 1 exceeds 1e3 x layer {cfg.depth}'s "
        "(exploding)",
        value=v,
        holds=ci[0] > 1e3,
        insight="vanishing/exploding gradients",
        interval=ci,
        seeds=cfg.seeds,
    )
    gain = gains["ReLU, 2.5 x He"]
    lo, hi = bootstrap_ci(gain)
    ctx.claim(
        "The measured backward gain per layer of ReLU with 2.5x He std is within 10% of "
        "He et al.'s prediction, 2.5",
        value=float(gain.mean()),
        holds=abs(lo - 2.5) <= 0.25 and abs(hi - 2.5) <= 0.25,
        insight="gradient flow",
        interval=(lo, hi),
        seeds=cfg.seeds,
    )
    w = rows[list(INITS).index("ReLU, 2.5 x He")]["weight_grad_ratio_1_to_L"]
    ctx.note(
        f"With 2.5x He init the weight-gradient ratio layer 1 / layer {cfg.depth} is {w:.3g}: "
        "forward activations grow as fast as the backward signal, so weight gradients look "
        "level while the signal explodes."
    )
    ctx.note("Gradients computed with mlatlas's own autograd engine (float64).")


# ------------------------------------------------------------------------------------
# why depth: the iterated tent map
# ------------------------------------------------------------------------------------


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


def count_linear_pieces(y: np.ndarray, x: np.ndarray, tol: float = 1e-6) -> int:
    """Linear pieces of a piecewise-linear function sampled on a grid fine enough that
    every kink lies on a grid point: 1 + the number of slope changes."""
    slopes = np.diff(y) / np.diff(x)
    return 1 + int(np.sum(np.abs(np.diff(slopes)) > tol * max(1.0, np.abs(slopes).max())))


def train_regressor(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float
) -> None:
    """Full-batch Adam with cosine decay on the squared error; inputs are centred to [-1, 1]."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        ((model(2 * x - 1) - y) ** 2).mean().backward()
        opt.step()
        sched.step()


@lab("backprop", insights=["Compositional function learning"])
def why_depth(ctx: Lab) -> None:
    """Depth buys compositional functions cheaply; gradient descent does not always find them.

    tent^k has 2^k linear pieces. A ReLU net of depth k and width 2 computes it exactly
    with 6k + 1 parameters, while a one-hidden-layer ReLU net with H units has at most
    H + 1 pieces on the line, so it needs 2^k - 1 units (Telgarsky 2016). The lab checks the
    construction, then trains deep-narrow and shallow-wide nets of equal size with Adam.
    """
    cfg = ctx.config(
        k=(4, 6, 8),
        train_ks=([2, 3], [2, 3, 4, 5], [2, 3, 4, 5, 6, 7]),
        width=16,
        seeds=(1, 3, 5),
        steps=(300, 3000, 20000),
        lr=0.01,
        n_train=512,
    )
    ctx.dataset(record("tent_iterate", n_train=cfg.n_train, domain=[0, 1]))
    torch.manual_seed(ctx.seed)

    # 1. the construction, exactly ---------------------------------------------------
    grid = np.linspace(0, 1, 2 ** (cfg.k + 3) + 1)  # dyadic grid: contains every kink
    exact_rows = []
    for k in range(1, cfg.k + 1):
        net = tent_network(k)
        with torch.no_grad():
            out = net(torch.tensor(grid)[:, None]).numpy()[:, 0]
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
    ctx.claim(
        f"A width-2 depth-{cfg.k} ReLU net ({last['deep_params']} parameters) computes "
        f"tent^{cfg.k} exactly, with all {2**cfg.k} linear pieces",
        value=last["max_abs_error"],
        holds=last["max_abs_error"] < 1e-9 and last["linear_pieces"] == 2**cfg.k,
        detail=f"value: max |error| on a dyadic grid; pieces counted: {last['linear_pieces']}",
    )

    x = torch.rand(cfg.n_train, 1, dtype=torch.float64)
    x_test = torch.linspace(0, 1, 4001, dtype=torch.float64)[:, None]

    def test_rmse(model: torch.nn.Module, k: int) -> float:
        with torch.no_grad():
            return rmse(model(2 * x_test - 1), tent_iterate(x_test.numpy(), k))

    # 2. shallow net with the construction's parameter count -------------------------
    k = cfg.k
    y = torch.tensor(tent_iterate(x.numpy(), k))
    same_size = []
    for _ in ctx.progress(cfg.seeds, desc="equal-size"):
        shallow = make_mlp([1, 2 * k, 1]).double()  # 3(2k) + 1 = 6k + 1 parameters
        train_regressor(shallow, x, y, cfg.steps, cfg.lr)
        deep = make_mlp([1] + [2] * k + [1]).double()  # the construction's shape, random init
        train_regressor(deep, x, y, cfg.steps, cfg.lr)
        same_size.append((test_rmse(shallow, k), test_rmse(deep, k)))
    same = np.array(same_size)
    floor = float(np.std(tent_iterate(x_test.numpy(), k)))  # RMSE of the best constant
    ctx.metric("shallow_equal_params_rmse", float(same[:, 0].mean()))
    ctx.metric("deep_width2_trained_rmse", float(same[:, 1].mean()))
    ctx.metric("constant_predictor_rmse", floor)
    lo, hi = bootstrap_ci(same[:, 0])
    ctx.claim(
        f"A trained one-hidden-layer net with the construction's {6 * k + 1} parameters cannot "
        f"fit tent^{k}: its test RMSE stays above 25% of the target's standard deviation",
        value=float(same[:, 0].mean()),
        holds=lo > 0.25 * floor,
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail=f"target std (RMSE of the best constant): {floor:.4f}",
    )
    ctx.note(
        f"The construction's own shape (width 2, depth {k}) trained by Adam from random init "
        f"reaches test RMSE {same[:, 1].mean():.4f} (constant predictor: {floor:.4f}): "
        "gradient descent does not find the exact solution that exists."
    )

    # 3. trained deep-narrow vs shallow-wide at equal parameter count ----------------------
    rows, log_ratios = [], []
    for kk in ctx.progress(cfg.train_ks, desc="trained"):
        y = torch.tensor(tent_iterate(x.numpy(), kk))
        for s in range(cfg.seeds):
            torch.manual_seed(ctx.seed * 1000 + kk * 10 + s)
            deep = make_mlp([1] + [cfg.width] * kk + [1]).double()
            p = count_params(deep)
            shallow = make_mlp([1, (p - 1) // 3, 1]).double()
            train_regressor(deep, x, y, cfg.steps, cfg.lr)
            train_regressor(shallow, x, y, cfg.steps, cfg.lr)
            d, sh = test_rmse(deep, kk), test_rmse(shallow, kk)
            log_ratios.append(math.log10(d / sh))
            rows.append(
                {
                    "k": kk,
                    "seed": s,
                    "deep": f"{kk}x{cfg.width}",
                    "deep_params": p,
                    "shallow_units": (p - 1) // 3,
                    "shallow_params": count_params(shallow),
                    "deep_rmse": d,
                    "shallow_rmse": sh,
                }
            )
            ctx.log(step=kk, seed=s, deep_rmse=d, shallow_rmse=sh)
    ctx.table("trained_equal_params", rows, note="Adam, full batch, cosine decay; test on 4001 pts")
    mean_lr = float(np.mean(log_ratios))
    lo, hi = bootstrap_ci(log_ratios)
    ctx.metric("mean_log10_rmse_ratio_deep_over_shallow", mean_lr)
    ctx.claim(
        "Trained by Adam at equal parameter count, deep-narrow nets fit tent^k better than "
        "shallow-wide ones (mean log10 RMSE ratio deep/shallow < 0, interval excluding 0)",
        value=mean_lr,
        holds=hi < 0,
        interval=(lo, hi),
        seeds=cfg.seeds,
        detail=f"over k in {cfg.train_ks} and {cfg.seeds} seeds each",
    )

    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    kk = cfg.train_ks[-1]
    ax[0, 0].plot(grid, tent_iterate(grid, cfg.k), lw=1)
    ax[0, 0].set(title=f"tent^{cfg.k}: exact from width 2 x depth {cfg.k}", xlabel="x")
    ks = sorted({r["k"] for r in rows})
    for key, label in (("deep_rmse", f"deep, width {cfg.width}"), ("shallow_rmse", "shallow")):
        m = [np.mean([r[key] for r in rows if r["k"] == q]) for q in ks]
        ax[0, 1].semilogy(ks, m, "o-", label=label)
    ax[0, 1].axhline(1 / math.sqrt(12), color="gray", ls="--", label="constant predictor")
    ax[0, 1].set(title="trained, equal parameters", xlabel="k", ylabel="test RMSE")
    ax[0, 1].legend(fontsize=7)
    ctx.figure("depth", fig, f"tent^k and trained fits up to k={kk}.")
    ctx.note("Trained with PyTorch (float64).")


# ------------------------------------------------------------------------------------
# the engine against PyTorch
# ------------------------------------------------------------------------------------


@lab("backprop", insights=["gradient flow"])
def engine_equals_torch(ctx: Lab) -> None:
    """The from-scratch engine and PyTorch train the same MLP to the same numbers.

    Same initial weights, same minibatches, same SGD with momentum, both in float64: if
    the engine's gradients are right, the two loss curves agree to rounding error.
    """
    cfg = ctx.config(
        hidden=[128, 64], epochs=(2, 30, 100), batch=32, lr=0.05, momentum=0.9, test_size=0.25
    )
    x, y = load_digits()
    ctx.dataset(record("sklearn-digits"))
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=cfg.test_size, random_state=ctx.seed, stratify=y
    )
    sizes = [x.shape[1], *cfg.hidden, 10]
    ours = MLP(sizes, np.random.default_rng(ctx.seed), activation="relu")
    ref = make_mlp(sizes, "relu").double()
    with torch.no_grad():
        for layer, lin in zip(ours.layers, ref[::2], strict=True):
            lin.weight.copy_(torch.from_numpy(layer.weight.data))
            lin.bias.copy_(torch.from_numpy(layer.bias.data))
    opt_ours = SGD(ours.parameters(), cfg.lr, cfg.momentum)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    batch_rng = np.random.default_rng(ctx.seed + 1)
    xt_ref, yt_ref = torch.from_numpy(x_tr), torch.from_numpy(y_tr)

    max_diff, step = 0.0, 0
    curve_ours, curve_ref = [], []
    for epoch in ctx.progress(cfg.epochs, desc="epochs"):
        for idx in minibatches(len(x_tr), cfg.batch, batch_rng):
            opt_ours.zero_grad()
            loss = cross_entropy(ours(Tensor(x_tr[idx])), y_tr[idx])
            loss.backward()
            opt_ours.step()

            opt_ref.zero_grad()
            loss_ref = torch.nn.functional.cross_entropy(ref(xt_ref[idx]), yt_ref[idx])
            loss_ref.backward()
            opt_ref.step()

            curve_ours.append(loss.item())
            curve_ref.append(loss_ref.item())
            max_diff = max(max_diff, abs(loss.item() - loss_ref.item()))
            step += 1
        ctx.log(step=step, epoch=epoch, loss_ours=curve_ours[-1], loss_torch=curve_ref[-1])

    with no_grad():
        acc_ours = float((ours(Tensor(x_te)).data.argmax(1) == y_te).mean())
    with torch.no_grad():
        acc_ref = float((ref(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    ctx.metric("max_abs_loss_difference", max_diff)
    ctx.metric("test_accuracy_ours", acc_ours)
    ctx.metric("test_accuracy_torch", acc_ref)
    ctx.metric("steps", step)
    ctx.table(
        "engines",
        [
            {"engine": "mlatlas autograd", "final_loss": curve_ours[-1], "test_accuracy": acc_ours},
            {"engine": "torch", "final_loss": curve_ref[-1], "test_accuracy": acc_ref},
        ],
    )
    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    ax[0, 0].semilogy(curve_ours, lw=1, label="mlatlas")
    ax[0, 0].semilogy(curve_ref, lw=1, ls="--", label="torch")
    ax[0, 0].set(title="training loss", xlabel="step", ylabel="cross-entropy")
    ax[0, 0].legend()
    diffs = np.abs(np.array(curve_ours) - np.array(curve_ref)) + 1e-20
    ax[0, 1].semilogy(diffs, lw=0.8)
    ax[0, 1].set(title="|loss_mlatlas - loss_torch|", xlabel="step")
    ctx.figure("loss_curves", fig, "Identical training runs of the two engines.")
    save_checkpoint(
        ctx.checkpoint_path("mlp_final"),
        {name: torch.from_numpy(p.data) for name, p in ours.named_parameters()},
        {"sizes": sizes, "epochs": cfg.epochs, "test_accuracy": acc_ours},
    )
    ctx.claim(
        f"Our engine and PyTorch give the same loss at every one of the {step} steps (max "
        "|difference| <= 1e-6)",
        value=max_diff,
        holds=max_diff <= 1e-6,
    )
    ctx.claim(
        f"The MLP trained with our engine reaches >= 95% test accuracy on digits "
        f"({len(y_te)} held-out images)",
        value=acc_ours,
        holds=acc_ours >= 0.95,
    )
