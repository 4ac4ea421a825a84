"""Layers and SGD on the engine equal torch.nn.Linear and torch.optim.SGD step for step, in
float64 and in float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlatlas.core.train import make_mlp
from mlatlas.foundations.backprop import MLP, SGD, Tensor, cross_entropy


def _copy_into_torch(ours: MLP, ref: torch.nn.Sequential) -> None:
    with torch.no_grad():
        for layer, lin in zip(ours.layers, ref[::2], strict=True):
            lin.weight.copy_(torch.from_numpy(layer.weight.data))
            lin.bias.copy_(torch.from_numpy(layer.bias.data))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_mlp_and_sgd_track_torch_for_many_steps(activation, momentum):
    rng = np.random.default_rng(0)
    sizes = [7, 16, 12, 4]
    ours = MLP(sizes, rng, activation=activation)
    ref = make_mlp(sizes, activation).double()
    _copy_into_torch(ours, ref)
    opt, opt_ref = (
        SGD(ours.parameters(), 0.1, momentum),
        torch.optim.SGD(ref.parameters(), lr=0.1, momentum=momentum),
    )
    x, y = rng.standard_normal((32, 7)), rng.integers(0, 4, 32)
    for _ in range(100):
        opt.zero_grad()
        loss = cross_entropy(ours(Tensor(x)), y)
        loss.backward()
        opt_ref.zero_grad()
        loss_ref = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        loss_ref.backward()
        for layer, lin in zip(ours.layers, ref[::2], strict=True):
            np.testing.assert_allclose(
                layer.weight.grad, lin.weight.grad.numpy(), rtol=1e-6, atol=1e-10
            )
        opt.step()
        opt_ref.step()
        np.testing.assert_allclose(loss.item(), loss_ref.item(), rtol=1e-6)
    for layer, lin in zip(ours.layers, ref[::2], strict=True):
        np.testing.assert_allclose(
            layer.weight.data, lin.weight.detach().numpy(), rtol=1e-6, atol=1e-10
        )


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_float32_training_stays_float32_and_tracks_torch(momentum):
    """Weights, activations, losses and gradients stay float32 through forward, backward and
    SGD, and 30 steps track torch's float32 run (rtol 1e-4 on the losses, 1e-3 on weights)."""
    rng = np.random.default_rng(1)
    sizes = [7, 16, 12, 4]
    ours = MLP(sizes, rng)
    for p in ours.parameters():
        p.data = p.data.astype(np.float32)
    ref = make_mlp(sizes).float()
    _copy_into_torch(ours, ref)
    opt = SGD(ours.parameters(), 0.1, momentum)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=momentum)
    x, y = rng.standard_normal((32, 7)).astype(np.float32), rng.integers(0, 4, 32)
    for _ in range(30):
        opt.zero_grad()
        logits = ours(Tensor(x))
        loss = cross_entropy(logits, y)
        loss.backward()
        opt.step()
        opt_ref.zero_grad()
        loss_ref = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        loss_ref.backward()
        opt_ref.step()
        assert logits.data.dtype == loss.data.dtype == np.float32
        assert all(p.data.dtype == p.grad.dtype == np.float32 for p in ours.parameters())
        np.testing.assert_allclose(loss.item(), loss_ref.item(), rtol=1e-4)
    for layer, lin in zip(ours.layers, ref[::2], strict=True):
        np.testing.assert_allclose(
            layer.weight.data, lin.weight.detach().numpy(), rtol=1e-3, atol=1e-5
        )


def test_linear_init_bounds_and_parameter_names():
    rng = np.random.default_rng(0)
    net = MLP([100, 5, 2], rng)
    w = net.layers[0].weight.data
    assert w.shape == (5, 100) and np.abs(w).max() <= 0.1
    names = [n for n, _ in net.named_parameters()]
    assert names == ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([2, 2], rng, activation="swish")
