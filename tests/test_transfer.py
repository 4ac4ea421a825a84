"""Topic 9's pieces against references, in float64: LoRA against the merged closed form and
autograd (outputs and gradients; only A and B learn), the Fisher diagonal against per-example
gradients computed one by one, the gradient reversal layer against autograd of -lambda x,
discriminative learning rates against separate per-layer Adam runs, and the masks that freeze
some members of a batched ensemble against training those members alone."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mlatlas.core.ensemble import Ensemble
from mlatlas.paradigms.transfer import (
    DANN,
    GradientReversal,
    LoRALinear,
    TransferMLP,
    add_lora,
    dann_lambda,
    discriminative_groups,
    ewc_penalty,
    fisher_diagonal,
    grad_reverse,
    last_k,
    linear_probe,
    mask_members,
    merge_lora,
    set_trainable,
)
from mlatlas.paradigms.transfer.data import blend, few_shot, textures

TOL = {"rtol": 1e-9, "atol": 1e-10}


def _lora(d_in: int, d_out: int, r: int, alpha: float, seed: int) -> LoRALinear:
    torch.manual_seed(seed)
    m = LoRALinear(nn.Linear(d_in, d_out).double(), r, alpha)
    with torch.no_grad():  # B = 0 at init; give it values so the update is not trivially 0
        m.lora_B.normal_()
    return m


@settings(max_examples=30, deadline=None)
@given(
    d_in=st.integers(1, 9),
    d_out=st.integers(1, 9),
    r=st.integers(1, 4),
    alpha=st.sampled_from([1.0, 4.0, 16.0]),
    n=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_lora_equals_linear_with_merged_weight(d_in, d_out, r, alpha, n, seed):
    """h = W0 x + b + (alpha / r) B A x: outputs and gradients w.r.t. x, A and B equal those
    of F.linear with W = W0 + (alpha / r) B A, built by autograd from the same leaves."""
    m = _lora(d_in, d_out, r, alpha, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, dtype=torch.float64, generator=g, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    a2 = m.lora_A.detach().clone().requires_grad_()
    b2 = m.lora_B.detach().clone().requires_grad_()
    y = m(x)
    y_ref = F.linear(x2, m.base.weight + (alpha / r) * b2 @ a2, m.base.bias)
    torch.testing.assert_close(y, y_ref, **TOL)
    w = torch.randn(y.shape, dtype=torch.float64, generator=g)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL)
    torch.testing.assert_close(m.lora_A.grad, a2.grad, **TOL)
    torch.testing.assert_close(m.lora_B.grad, b2.grad, **TOL)


def test_lora_starts_at_the_pretrained_function_and_trains_only_a_and_b():
    torch.manual_seed(0)
    base = nn.Linear(6, 4).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    m = LoRALinear(copy.deepcopy(base), r=2, alpha=4.0)
    assert torch.equal(m.lora_B, torch.zeros_like(m.lora_B))
    torch.testing.assert_close(m(x), base(x), rtol=0, atol=0)
    m(x).pow(2).sum().backward()
    assert m.base.weight.grad is None and m.base.bias.grad is None
    assert not m.base.weight.requires_grad and not m.base.bias.requires_grad
    # with B = 0, dL/dA = s B^T (...) = 0 and dL/dB = s (dL/dh)^T (x A^T) is not
    assert torch.count_nonzero(m.lora_A.grad) == 0
    assert torch.count_nonzero(m.lora_B.grad) > 0
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names == {"lora_A", "lora_B"}


def test_merged_model_gives_the_same_outputs():
    """add_lora on every trunk layer, train B to non-zero, merge: the same function to 1e-6
    (float32, as the labs run)."""
    torch.manual_seed(1)
    net = TransferMLP(20, [16, 12], [3, 4])
    add_lora(net, r=3, alpha=6.0, names=["trunk.0", "trunk.1"])
    assert isinstance(net.trunk[0], LoRALinear) and not isinstance(net.heads[0], LoRALinear)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.5)
    x = torch.randn(32, 20)
    before = net(x)
    merge_lora(net)
    assert not any(isinstance(m, LoRALinear) for m in net.modules())
    torch.testing.assert_close(net(x), before, rtol=0, atol=1e-6)


def _direct_fisher(model, x, labels, cols):
    """The definition, one example and one class at a time with torch.autograd.grad."""
    params = [p for _, p in model.named_parameters()]
    total = [torch.zeros_like(p) for p in params]
    for i in range(len(x)):
        logp = torch.log_softmax(model(x[i : i + 1])[0, cols], -1)
        classes = range(len(logp)) if labels is None else [int(labels[i])]
        for c in classes:
            g = torch.autograd.grad(logp[c], params, retain_graph=True)
            w = logp[c].exp().detach() if labels is None else 1.0
            for t, gi in zip(total, g, strict=True):
                t += w * gi.pow(2)
    return {n: t / len(x) for (n, _), t in zip(model.named_parameters(), total, strict=True)}


@pytest.mark.parametrize("empirical", [False, True])
def test_fisher_equals_per_example_gradients(empirical):
    torch.manual_seed(2)
    net = TransferMLP(7, [5, 4], [3, 2]).double()
    x = torch.randn(11, 7, dtype=torch.float64)
    labels = torch.randint(0, 3, (11,)) if empirical else None
    cols = net.head(0)
    got = fisher_diagonal(net, x, labels=labels, output=cols, chunk=4)
    ref = _direct_fisher(net, x, labels, cols)
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], **TOL)
    # the other head's parameters do not affect head 0's log-probabilities
    assert torch.count_nonzero(got["heads.1.weight"]) == 0
    sub = fisher_diagonal(net, x, labels=labels, names=["trunk.0.weight"], output=cols)
    torch.testing.assert_close(sub["trunk.0.weight"], ref["trunk.0.weight"], **TOL)


def test_ewc_penalty_closed_form_and_gradient():
    g = torch.Generator().manual_seed(3)
    shapes = {"a": (3, 4), "b": (5,)}
    theta = {
        k: torch.randn(s, dtype=torch.float64, generator=g).requires_grad_()
        for k, s in shapes.items()
    }
    anchor = {k: torch.randn(s, dtype=torch.float64, generator=g) for k, s in shapes.items()}
    fisher = {k: torch.rand(s, dtype=torch.float64, generator=g) for k, s in shapes.items()}
    pen = ewc_penalty(theta, anchor, fisher)
    ref = 0.5 * sum((fisher[k] * (theta[k] - anchor[k]) ** 2).sum() for k in shapes)
    torch.testing.assert_close(pen, ref, **TOL)
    pen.backward()
    for k in shapes:  # d/dtheta = F (theta - theta*)
        torch.testing.assert_close(
            theta[k].grad, fisher[k] * (theta[k] - anchor[k]).detach(), **TOL
        )
    stacked = {k: torch.stack([theta[k].detach(), anchor[k]]) for k in shapes}
    per = ewc_penalty(
        stacked,
        {k: anchor[k].expand_as(stacked[k]) for k in shapes},
        {k: fisher[k].expand_as(stacked[k]) for k in shapes},
        per_member=True,
    )
    torch.testing.assert_close(
        per, torch.stack([ref.detach(), torch.zeros((), dtype=torch.float64)]), **TOL
    )


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    lambd=st.floats(0.0, 3.0),
    seed=st.integers(0, 10_000),
)
def test_gradient_reversal_forward_identity_backward_minus_lambda(shape, lambd, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=torch.float64, generator=g, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    up = torch.randn(shape, dtype=torch.float64, generator=g)
    y = grad_reverse(x, lambd)
    torch.testing.assert_close(y, x.detach(), rtol=0, atol=0)
    (y * up).sum().backward()
    # reference: autograd of y = -lambda x has the gradient the layer must produce
    (-lambd * x2 * up).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL)
    torch.testing.assert_close(x.grad, -lambd * up, **TOL)


def test_gradient_reversal_in_a_network_and_under_vmap():
    """Through GRL, a layer below gets exactly -lambda times the gradient it gets without it;
    inside torch.func.vmap (batched ensembles) the rule is the same."""
    torch.manual_seed(4)
    lin, head = nn.Linear(4, 3).double(), nn.Linear(3, 1).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    head(GradientReversal(0.7)(lin(x))).sum().backward()
    rev = lin.weight.grad.clone()
    lin.weight.grad = None
    head(lin(x)).sum().backward()
    torch.testing.assert_close(rev, -0.7 * lin.weight.grad, **TOL)
    xs = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    torch.func.vmap(lambda v: grad_reverse(v, 2.0).pow(2).sum())(xs).sum().backward()
    torch.testing.assert_close(xs.grad, -2.0 * 2 * xs.detach(), **TOL)


def test_dann_forward_and_lambda_schedule():
    torch.manual_seed(5)
    m = DANN(10, [8, 6], 4, 5).double()
    x = torch.randn(7, 10, dtype=torch.float64)
    out = m(x, 0.3)
    torch.testing.assert_close(out[:, :4], m.net(x), **TOL)
    assert out.shape == (7, 5)
    assert dann_lambda(0.0) == 0.0 and abs(dann_lambda(1.0) - 0.9999092) < 1e-6


def test_discriminative_lr_equals_one_adam_per_layer():
    """Groups at lr / 2.6^(L-1-l) train exactly like one Adam per layer at its own rate."""
    torch.manual_seed(6)
    net = TransferMLP(5, [4, 3], [2]).double()
    ref = copy.deepcopy(net)
    layers = net.layer_names()[:3]  # trunk.0, trunk.1, heads.0
    groups = discriminative_groups(net, layers, lr=0.01)
    assert [g["lr"] for g in groups] == pytest.approx([0.01 / 2.6**2, 0.01 / 2.6, 0.01])
    opt = torch.optim.Adam(groups)
    ref_opts = [
        torch.optim.Adam(ref.get_submodule(n).parameters(), lr=0.01 / 2.6 ** (2 - i))
        for i, n in enumerate(layers)
    ]
    x, y = torch.randn(9, 5, dtype=torch.float64), torch.randint(0, 2, (9,))
    for _ in range(5):
        for m, opts in ((net, [opt]), (ref, ref_opts)):
            for o in opts:
                o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            for o in opts:
                o.step()
    for (n, p), (_, q) in zip(net.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, **TOL, msg=n)


def test_probe_and_last_k_freeze_what_they_say():
    torch.manual_seed(7)
    net = TransferMLP(5, [4, 3], [2, 2])
    assert set_trainable(net, linear_probe) == ["heads.1.weight", "heads.1.bias"]
    layers = ["trunk.0", "trunk.1", "heads.1"]
    got = set_trainable(net, lambda n: not n.startswith("heads.0") and last_k(2, layers)(n))
    assert got == ["trunk.1.weight", "trunk.1.bias", "heads.1.weight", "heads.1.bias"]


def test_masked_members_train_like_separately_frozen_models():
    """A two-member ensemble, member 0 training everything and member 1 only its head,
    equals two separate Adam runs, one with the trunk frozen by requires_grad."""
    torch.manual_seed(8)
    a, b = TransferMLP(6, [5], [3]).double(), TransferMLP(6, [5], [3]).double()
    ens = Ensemble([copy.deepcopy(a), copy.deepcopy(b)])
    mask_members(ens, lambda r, n: r == 0 or n.startswith("heads."))
    set_trainable(b, lambda n: n.startswith("heads."))
    opts = [
        torch.optim.Adam(ens.parameters(), lr=0.05),
        torch.optim.Adam(a.parameters(), lr=0.05),
        torch.optim.Adam([p for p in b.parameters() if p.requires_grad], lr=0.05),
    ]
    x, y = torch.randn(10, 6, dtype=torch.float64), torch.randint(0, 3, (10,))
    for _ in range(4):
        for o in opts:
            o.zero_grad()
        z = ens(x)
        sum(F.cross_entropy(z[r], y) for r in range(2)).backward()
        F.cross_entropy(a(x), y).backward()
        F.cross_entropy(b(x), y).backward()
        for o in opts:
            o.step()
    for r, ref in enumerate((a, b)):
        got = ens.member(r)
        for (n, p), (_, q) in zip(got.named_parameters(), ref.named_parameters(), strict=True):
            torch.testing.assert_close(p, q, **TOL, msg=f"member {r} {n}")
    assert torch.equal(ens.member(1).trunk[0].weight, b.trunk[0].weight)


def test_few_shot_and_blend():
    import numpy as np

    y = torch.tensor([0, 1, 2] * 10)
    idx = few_shot(y, 4, np.random.Generator(np.random.PCG64(0)))
    assert torch.bincount(y[idx]).tolist() == [4, 4, 4] and len(set(idx.tolist())) == 12
    t = textures(5, 8, np.random.Generator(np.random.PCG64(1)))
    assert t.shape == (5, 64) and t.min() >= 0 and t.max() <= 1
    x = torch.zeros(5, 64)
    torch.testing.assert_close(blend(x, t), t)
    torch.testing.assert_close(blend(torch.ones(5, 64), t), 1 - t)


def _scores(oracle_at_1: float, nan_at_1: bool = False):
    """Validation means of a 2 x 2 grid: adam is better for DANN, sgd for the others."""
    s = {}
    for c in (0.5, 1.0):
        for o in ("sgd", "adam"):
            s[(c, o, "source_only")] = (0.5 if o == "sgd" else 0.4, 0.95)
            s[(c, o, "dann")] = (0.6 if o == "adam" else 0.55, 0.9)
            s[(c, o, "target_oracle")] = (0.9 if c == 0.5 else oracle_at_1, 0.5)
    if nan_at_1:
        s[(1.0, "adam", "target_oracle")] = (float("nan"), 0.5)
    return s


def test_choose_adaptation_takes_each_arms_best_optimizer_and_the_strongest_learnable_shift():
    from mlatlas.paradigms.transfer.selection import choose_adaptation

    grid = ((0.5, 1.0), ("sgd", "adam"), ("source_only", "dann", "target_oracle"), 0.9)
    learnable = choose_adaptation(_scores(0.9), *grid)  # 0.9 >= 0.9 * 0.95 at contrast 1
    assert learnable.contrast == 1.0
    assert learnable.optimizer == {"source_only": "sgd", "dann": "adam", "target_oracle": "sgd"}
    hard = choose_adaptation(_scores(0.5), *grid)  # the oracle cannot read contrast 1
    assert hard.contrast == 0.5
    assert [r["chosen"] for r in hard.rows].count(True) == 3
    assert all(r["contrast"] == 0.5 for r in hard.rows if r["chosen"])
    # a diverged oracle (NaN) counts 0, so a NaN never makes a grid point win
    nan = choose_adaptation(_scores(0.95, nan_at_1=True), *grid)
    assert nan.optimizer["target_oracle"] == "sgd" and nan.contrast == 1.0
    assert choose_adaptation(_scores(float("nan")), *grid).contrast == 0.5
    # the clean-source reference is the best the source-only network reads clean digits:
    # an optimizer that undertrains it (0.3 on the source) must not make contrast 1 learnable
    weak = _scores(0.5)
    for c in (0.5, 1.0):
        weak[(c, "sgd", "source_only")] = (0.5, 0.3)
    assert choose_adaptation(weak, *grid).contrast == 0.5


def test_domain_adaptation_never_lets_the_test_labels_choose(monkeypatch, tmp_path):
    """Shuffling the test labels changes the test accuracies but not one validation score
    nor the choice: the selection never reads the test split."""
    import importlib

    import numpy as np

    from mlatlas.core.runner import get_lab, run_lab

    module = importlib.import_module("mlatlas.paradigms.transfer.labs.domain_adaptation")
    spec = get_lab("transfer", "domain_adaptation")
    plain = run_lab(spec, scale="smoke", seed=0, out=tmp_path / "plain")
    real_task = module.task

    def shuffled_task(*args, **kwargs):
        data = real_task(*args, **kwargs)
        perm = np.random.Generator(np.random.PCG64(5)).permutation(len(data.y_test))
        data.y_test = data.y_test[torch.as_tensor(perm)]
        return data

    monkeypatch.setattr(module, "task", shuffled_task)
    shuffled = run_lab(spec, scale="smoke", seed=0, out=tmp_path / "shuffled")
    assert plain.ok and shuffled.ok, (plain.error, shuffled.error)
    assert shuffled.tables["selection"] == plain.tables["selection"]
    for m in ("chosen_contrast", "chosen_optimizer"):
        assert shuffled.metrics[m] == plain.metrics[m]
    assert shuffled.tables["accuracy"] != plain.tables["accuracy"]  # the test labels were read
