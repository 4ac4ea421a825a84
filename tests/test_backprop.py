"""Topic 1's lab helpers: stacked replicates train exactly like separate runs, and the
hand-set tent network computes tent^k with all its linear pieces."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core.data import tent_iterate
from mlatlas.core.train import make_mlp
from mlatlas.foundations.backprop.labs.why_depth import count_linear_pieces, tent_network
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
