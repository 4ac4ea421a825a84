"""Residual and dense blocks: shapes, the identity at zero-initialised branches, the
pre-activation identity path, and nets stacked as channel groups (`residual.grouped`)."""

from __future__ import annotations

import importlib

import pytest
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
from mlatlas.core.runner import get_lab, run_lab


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


# -- the labs: what a diverged run counts as, the degradation margin, the parameter check ----

FAST = {"steps": 5}  # smoke data and nets, a few steps: the labs' bookkeeping, not results


def _run(lab_name, tmp_path, overrides=None):
    r = run_lab(get_lab("residual", lab_name), "smoke", 0, out=tmp_path, overrides=overrides)
    assert r.ok, r.error
    return {c["statement"]: c for c in r.claims}


def _claim(claims, start):
    (c,) = [c for s, c in claims.items() if s.startswith(start)]
    return c


@pytest.mark.parametrize(
    ("lab_name", "arm", "claim_start"),
    [
        # the arm whose failure a fixed failure value would have counted in the claim's favour
        ("lesion", "residual 14 layers", "Removing a single block"),
        ("degradation", "plain 20 layers", "The 20-layer plain net has higher"),
        ("degradation", "plain 20 layers", "At 20 layers the residual net"),
        ("densenet_vs_resnet", "resnet", "DenseNet is not less accurate"),
    ],
)
def test_a_diverged_seed_leaves_the_claim_undecided(lab_name, arm, claim_start, tmp_path):
    # seed 0 of one arm is marked diverged: the claim must count it and stay inconclusive,
    # not decide with a stand-in value that favours it (0 accuracy lost, chance-level error)
    module = importlib.import_module(f"mlatlas.architectures.residual.labs.{lab_name}")
    real = module.train_group

    def diverge_seed_0(*args, **kwargs):
        group, diverged = real(*args, **kwargs)
        if kwargs["desc"] == arm:
            diverged = diverged.copy()
            diverged[0] = True
        return group, diverged

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module, "train_group", diverge_seed_0)
        c = _claim(_run(lab_name, tmp_path, FAST), claim_start)
    assert "on_failure" not in c
    assert c["n_failed"] == 1 and c["failed_ids"] == [0]
    assert c["verdict"] == "inconclusive" and "failed" in c["reason"]


def test_degradation_no_worse_margin_is_half_a_point(tmp_path):
    # below the +0.60 points of plain-34 vs plain-18 (He et al. 2016, Table 2)
    c = _claim(_run("degradation", tmp_path, FAST), "The 20-layer residual net's")
    assert c["direction"] == "<" and c["margin"] == 0.005
    assert "+0.5 points" in c["statement"]


def test_densenet_parameter_check_fails_when_the_resnet_is_smaller(tmp_path):
    # ResNet-8 at widths (8, 16, 32) has 19810 parameters, the DenseNet 19816: the check fails
    (check,) = [
        c
        for c in _run("densenet_vs_resnet", tmp_path, {**FAST, "resnet_n": 1}).values()
        if c["kind"] == "check"
    ]
    assert check["verdict"] == "fail" and check["estimate"] > 1
    (check,) = [
        c for c in _run("densenet_vs_resnet", tmp_path, FAST).values() if c["kind"] == "check"
    ]
    assert check["verdict"] == "pass"
