"""Topic 1's lab helpers: stacked replicates train exactly like separate runs, and the
hand-set tent network computes tent^k with all its linear pieces."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core.data import tent_iterate
from mlatlas.core.train import make_mlp
from mlatlas.foundations.backprop.labs.why_depth import tent_network
from mlatlas.foundations.backprop.pieces import count_linear_pieces
from mlatlas.foundations.backprop.stacked import StackedMLP, cosine, train_regression


def _models(seed: int, sizes: list[int], activation: str, n: int) -> list[torch.nn.Sequential]:
    torch.manual_seed(seed)
    return [make_mlp(sizes, activation).double() for _ in range(n)]


def test_stacked_training_equals_separate_runs():
    sizes, steps, lr = [1, 8, 8, 1], 25, 0.01
    x = torch.rand(3, 40, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.sin(4 * x)
    stack = StackedMLP(_models(0, sizes, "tanh", 3))
    fr = train_regression(stack, x, y, steps, lr, floor=lr / 10)
    assert fr.losses.shape == (steps, 3) and not fr.diverged.any()
    for r, model in enumerate(_models(0, sizes, "tanh", 3)):
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = cosine(lr, steps, lr / 10)
        for t in range(steps):
            for g in opt.param_groups:
                g["lr"] = sched(t)
            opt.zero_grad()
            loss = ((model(x[r]) - y[r]) ** 2).mean()
            loss.backward()
            opt.step()
            assert np.isclose(loss.item(), fr.losses[t, r], rtol=1e-10, atol=1e-12)
        member = stack.member(r)
        for a, b in zip(member.parameters(), model.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_stacked_forward_shares_or_splits_inputs():
    stack = StackedMLP(_models(2, [2, 5, 1], "relu", 4))
    xb = torch.randn(7, 2, dtype=torch.float64)
    shared = stack(xb)
    assert shared.shape == (4, 7, 1)
    torch.testing.assert_close(shared, stack(xb.expand(4, 7, 2)))
    torch.testing.assert_close(shared[3], stack.member(3)(xb))


def test_cosine_matches_torch_scheduler():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 50, eta_min=0.001)
    sched = cosine(0.1, 50, 0.001)
    for t in range(50):
        assert np.isclose(opt.param_groups[0]["lr"], sched(t))
        opt.step()
        ref.step()


def test_tent_network_is_exact():
    for k in (1, 3, 6):
        grid = np.linspace(0, 1, 2 ** (k + 3) + 1)
        with torch.no_grad():
            out = tent_network(k)(torch.tensor(grid)[:, None]).numpy()[:, 0]
        assert np.abs(out - tent_iterate(grid, k)).max() < 1e-12
        assert count_linear_pieces(out, grid) == 2**k


def _exact_shallow_tent(k: int) -> torch.nn.Sequential:
    """A [1, 2^k, 1] ReLU net equal to tent^k on [0, 1]: slope 2^k, then a kink of -+2^(k+1)
    at each m / 2^k (its input is 2x - 1, as in why_depth)."""
    n = 2**k
    net = make_mlp([1, n, 1]).double()
    knots = torch.arange(n, dtype=torch.float64) / n  # 0, 1/n, ... (0: the initial slope)
    jumps = torch.tensor([n] + [(-1) ** m * 2.0 * n for m in range(1, n)], dtype=torch.float64)
    with torch.no_grad():  # relu(x - knot) with x = (u + 1) / 2: weight 1/2, bias 1/2 - knot
        net[0].weight.fill_(0.5)
        net[0].bias.copy_(0.5 - knots)
        net[2].weight.copy_(jumps[None])
        net[2].bias.zero_()
    return net


def test_shallow_error_floor_bounds_every_net_and_fails_an_exact_fit():
    """why_depth's check (every trained [1, 2k, 1] net has RMSE / std >= the computed floor)
    passes for any 12-unit net and fails for a 64-unit net that interpolates tent^6."""
    from mlatlas.core.claims import check_passes
    from mlatlas.foundations.backprop.labs.why_depth import shallow_error_floor

    x = np.linspace(0, 1, 4001)
    target = tent_iterate(x, 6)
    floor = shallow_error_floor(6, 12, x)
    assert abs(floor - np.sqrt(1 - 12 / 32)) < 0.01  # the continuum value
    assert abs(shallow_error_floor(4, 8, np.linspace(0, 1, 4001)) - 0.33) < 0.01
    u = torch.tensor(2 * x - 1)[:, None]

    def ratio(net):
        with torch.no_grad():
            return float(np.sqrt(np.mean((net(u).numpy()[:, 0] - target) ** 2)) / np.std(target))

    exact = ratio(_exact_shallow_tent(6))
    assert exact < 1e-9 and not check_passes(exact, ">=", floor)  # the check fails
    torch.manual_seed(0)
    for _ in range(20):  # random 12-unit nets, and the least-squares output layer for each
        net = make_mlp([1, 12, 1]).double()
        with torch.no_grad():
            net[0].weight.mul_(20.0)
            h = torch.cat([net[1](net[0](u)), torch.ones(len(x), 1, dtype=torch.float64)], 1)
            coef = torch.linalg.lstsq(h, torch.tensor(target)[:, None]).solution
            net[2].weight.copy_(coef[:-1].T)
            net[2].bias.copy_(coef[-1])
        assert check_passes(ratio(net), ">=", floor)


def test_log_log_slope_reads_the_rate():
    from mlatlas.foundations.backprop.labs.universal_approximation import log_log_slope

    widths = [1, 2, 4, 8, 16]
    assert np.isclose(log_log_slope(widths, [3.0 * w**-0.5 for w in widths]), -0.5)
    assert log_log_slope(widths, [0.1 * w for w in widths]) > 0  # error growing: claim refuted
