"""Residual and dense blocks: shapes, the identity at zero-initialised branches, the
pre-activation identity path, and nets stacked as channel groups (`residual.grouped`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlatlas.architectures.residual.blocks import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    DenseBlock,
    DenseNet,
    PreActBlock,
    Transition,
    zero_init_residual,
)
from mlatlas.architectures.residual.grouped import Grouped


def test_block_shapes():
    x = torch.randn(2, 16, 14, 14)
    assert BasicBlock(16, 32, stride=2)(x).shape == (2, 32, 7, 7)
    assert Bottleneck(16, 8)(x).shape == (2, 32, 14, 14)
    assert PreActBlock(16)(x).shape == x.shape
    block = DenseBlock(16, growth=6, layers=3)
    assert block(x).shape == (2, 16 + 18, 14, 14) and block.c_out == 34
    assert Transition(34, 17)(block(x)).shape == (2, 17, 7, 7)
    assert DenseNet()(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_zero_initialised_residual_block_is_the_identity_map():
    torch.manual_seed(0)
    x = torch.randn(3, 8, 10, 10).relu()  # a block's input is a ReLU output
    for block in (BasicBlock(8, 8), Bottleneck(8, 2)):
        zero_init_residual(block).eval()
        torch.testing.assert_close(block(x), x)
    net = zero_init_residual(CifarResNet(2, widths=(8, 8, 8))).eval()
    stem_out = net.stem(torch.randn(1, 1, 12, 12))
    first_stage = net.blocks[:2]  # stride 1, same width: identity shortcuts
    torch.testing.assert_close(first_stage(stem_out), stem_out)


def test_preact_identity_path_passes_gradient_unchanged():
    # with the branch switched off, dy/dx is exactly the identity: the gradient is preserved
    block = PreActBlock(4).eval()
    with torch.no_grad():
        block.f[-1].weight.zero_()
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    g = torch.randn(1, 4, 6, 6)
    block(x).backward(g)
    torch.testing.assert_close(x.grad, g)


def test_plain_network_has_no_skip():
    torch.manual_seed(0)
    plain = CifarResNet(1, widths=(4, 4, 4), residual=False).eval()
    zero_init_residual(plain)
    x = torch.randn(1, 1, 12, 12)
    # with the last BN of each branch at 0 and no skip, the blocks output relu(0) = 0
    out = plain.blocks(plain.stem(x))
    assert out.abs().max() == 0


def _sgd_steps(model, loss_of, steps=3):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    model.train()
    for t in range(steps):
        opt.zero_grad()
        loss_of(model, t).sum().backward()
        opt.step()
    return model.eval()


def _check_grouped_equals_separate(build, R=3, B=8):
    torch.manual_seed(0)
    models = [build() for _ in range(R)]
    x = torch.randn(3, R, B, 1, 8, 8)
    y = torch.randint(0, 10, (3, R, B))
    group = Grouped(models)
    out = group(x[0])
    assert out.shape == (R, B, 10)
    for r in range(R):
        torch.testing.assert_close(out[r], models[r](x[0, r]), atol=1e-5, rtol=1e-5)

    def group_loss(m, t):
        ce = F.cross_entropy(m(x[t]).flatten(0, 1), y[t].flatten(), reduction="none")
        return ce.view(R, B).mean(1)

    _sgd_steps(group, group_loss)
    xt = torch.randn(4, 1, 8, 8)
    for r in range(R):
        alone = _sgd_steps(models[r], lambda m, t, r=r: F.cross_entropy(m(x[t, r]), y[t, r]))
        mine = group.member(r).state_dict()
        for name, p in alone.state_dict().items():
            torch.testing.assert_close(p, mine[name], atol=1e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(group(xt)[r], alone(xt), atol=1e-5, rtol=1e-4)


def test_grouped_nets_train_exactly_like_separate_runs():
    # R nets stacked as channel groups, each with its own batches = R separate SGD runs
    # (forward, train-mode BatchNorm, momentum, weight decay, eval with running statistics)
    _check_grouped_equals_separate(lambda: CifarResNet(1, widths=(4, 4, 8), residual=True))
    _check_grouped_equals_separate(lambda: CifarResNet(1, widths=(4, 4, 8), residual=False))
    _check_grouped_equals_separate(lambda: DenseNet(growth=3, layers=(2, 2)))
