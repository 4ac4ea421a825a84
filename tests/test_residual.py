"""Residual and dense blocks: shapes, the identity at zero-initialised branches, and the
pre-activation identity path."""

from __future__ import annotations

import torch

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
