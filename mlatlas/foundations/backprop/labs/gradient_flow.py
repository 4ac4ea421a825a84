"""Lab: per-layer gradients at initialisation: vanishing, preserved, exploding."""

from __future__ import annotations

import numpy as np

from mlatlas.core import Lab, lab, new_figure, per_scale
from mlatlas.core.data import load_digits, record
from mlatlas.foundations.backprop.autograd import Tensor, cross_entropy
from mlatlas.foundations.backprop.nn import ACTIVATIONS, MLP

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

    Each seed draws its own batch of digits and its own weights; every claim is an
    experiment over seeds: the ratios on log10 scale, the measured gain per layer (from a
    log-linear fit over the hidden layers) tested to lie within 10% of 2.5.
    """
    cfg = ctx.config(
        depth=per_scale(6, 20, 50),
        width=per_scale(64, 256, 512),
        batch=256,
        seeds=per_scale(3, 10, 20),
    )
    x, y = load_digits()
    ctx.dataset(record("sklearn-digits"))
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)

    L = cfg.depth
    vanish = ctx.claim(
        f"Sigmoid with PyTorch's default init: the signal reaching layer 1 is below 1e-3 of "
        f"that at layer {L} (vanishing)",
        quantity=f"||dL/dz_1|| / ||dL/dz_{L}|| per seed, sigmoid, U(+-1/sqrt(n))",
        direction="<",
        margin=1e-3,
        log=True,
        insight="vanishing/exploding gradients",
    )
    level = ctx.claim(
        f"ReLU with He init: the signal at layer 1 is within a factor 10 of layer {L}'s",
        quantity=f"||dL/dz_1|| / ||dL/dz_{L}|| per seed, ReLU, He normal",
        direction="within",
        margin=(0.1, 10.0),
        log=True,
        insight="gradient flow",
    )
    explode = ctx.claim(
        f"ReLU with 2.5x He std: the signal at layer 1 exceeds 1e3 x layer {L}'s (exploding)",
        quantity=f"||dL/dz_1|| / ||dL/dz_{L}|| per seed, ReLU, 2.5 x He normal",
        direction=">",
        margin=1e3,
        log=True,
        insight="vanishing/exploding gradients",
    )
    gain_claim = ctx.claim(
        "The measured backward gain per layer of ReLU with 2.5x He std is within 10% of "
        "He et al.'s prediction, 2.5",
        quantity="per seed: 10^-(slope of log10 ||dL/dz_l|| vs l over hidden layers 1..L)",
        direction="within",
        margin=(2.25, 2.75),
        insight="gradient flow",
    )

    signal = {init: [] for init in INITS}
    weight = {init: [] for init in INITS}
    for rep in ctx.replicates(cfg.seeds):
        idx = rep.rng("batch").choice(len(x), cfg.batch, replace=False)
        for init in INITS:
            s, w = layer_gradient_norms(x[idx], y[idx], L, cfg.width, init, rep.rng("init", init))
            signal[init].append(s)
            weight[init].append(w)
        ratio_now = {init: signal[init][-1][0] / signal[init][-1][L - 1] for init in INITS}
        ctx.log(step=rep.id, **{f"signal_ratio_1_to_L {k}": v for k, v in ratio_now.items()})
    signal = {k: np.stack(v) for k, v in signal.items()}  # (seeds, depth + 1)
    weight = {k: np.stack(v) for k, v in weight.items()}

    layers = np.arange(1, L + 1)  # hidden layers 1..L (the output layer excluded)
    rows, ratios, gains = [], {}, {}
    for init in INITS:
        s_hidden = signal[init][:, :L]
        # least-squares slope of log10 ||dL/dz_l|| against l, per seed; backward gain = 10^-slope
        gains[init] = 10 ** (-np.polyfit(layers, np.log10(s_hidden).T, 1)[0])
        ratios[init] = s_hidden[:, 0] / s_hidden[:, -1]
        w_ratio = weight[init][:, 0] / weight[init][:, L - 1]
        rows.append(
            {
                "init": init,
                "signal_ratio_1_to_L": float(10 ** np.log10(ratios[init]).mean()),
                "signal_gain_per_layer": float(gains[init].mean()),
                "weight_grad_ratio_1_to_L": float(10 ** np.log10(w_ratio).mean()),
            }
        )
    ctx.table(
        "gradient_norms",
        rows,
        note=f"depth {L}, width {cfg.width}, {cfg.seeds} seeds; signal = ||dL/dz_l||; "
        "ratios are geometric means over seeds; gain is the backward factor per layer from a "
        "log-linear fit",
    )
    names = list(INITS)
    for rep_id in range(cfg.seeds):
        vanish.add(rep_id, ratios[names[0]][rep_id])
        level.add(rep_id, ratios[names[2]][rep_id])
        explode.add(rep_id, ratios[names[3]][rep_id])
        gain_claim.add(rep_id, gains[names[3]][rep_id])

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

    w = rows[names.index("ReLU, 2.5 x He")]["weight_grad_ratio_1_to_L"]
    ctx.note(
        f"With 2.5x He init the weight-gradient ratio layer 1 / layer {L} is {w:.3g}: "
        "forward activations grow as fast as the backward signal, so weight gradients look "
        "level while the signal explodes."
    )
    ctx.note("Gradients computed with mlatlas's own autograd engine (float64).")
