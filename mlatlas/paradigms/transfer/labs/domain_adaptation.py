"""Lab: unsupervised domain adaptation to a texture-blended domain, source-only training
against DANN's gradient reversal."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, fit, lab, new_figure, per_scale
from mlatlas.core.ensemble import Ensemble, member_batches, member_cross_entropy
from mlatlas.core.seeding import Replicate, fixed_rng
from mlatlas.core.train import batches_for_steps
from mlatlas.paradigms.transfer.dann import DANN, dann_lambda
from mlatlas.paradigms.transfer.data import blend, standardise, stats_of, task, textures
from mlatlas.paradigms.transfer.train import head_accuracy

ARMS = ("source_only", "dann", "target_oracle")


@lab("transfer", insights=["domain adaptation"])
def domain_adaptation(ctx: Lab) -> None:
    """Domain adaptation: a texture-blended target domain, source-only training against DANN.

    Source domain: MNIST digits with labels (scikit-learn's digits at smoke scale). Target
    domain: other images of the same digits blended with smooth random textures by
    MNIST-M's rule |x - texture| (Ganin & Lempitsky 2015 built MNIST-M from photographs;
    the textures here are generated, so the shift needs no download), with no labels.
    The training set is split in half so that no digit image appears in both domains.

    Arms, paired by seed (same initialisation, same batches): *source_only* trains on the
    labelled source; *dann* adds the domain classifier behind a gradient reversal layer
    with Ganin et al.'s (2016) schedule lambda_p = 2 / (1 + exp(-10 p)) - 1; the
    *target_oracle* trains on the target's labels, an upper bound no adaptation method
    has. For comparison, Ganin & Lempitsky (2015, Table 1) report MNIST -> MNIST-M target
    accuracy 0.5225 source-only, 0.7666 with DANN and 0.9596 trained on the target, with a
    convolutional network. Nothing is tuned on the target: with no target labels, the
    unsupervised setting offers no validation set for it, so every arm uses the paper's
    recipe (SGD, momentum 0.9, annealed rate) for a fixed number of steps, and the final
    weights.

    How the setup was arrived at, and what it found. A first version blended full-contrast
    textures and trained with Adam at 1e-3: the target oracle reached only 0.28 (an MLP
    could not read digits drawn as inversions of a full-contrast texture), and DANN
    collapsed (target 0.12 against 0.52 source-only at half contrast). The texture contrast
    was then halved (textures in [0, 0.5]: the strokes stay brighter than the background)
    and Adam replaced by Ganin et al.'s SGD recipe. At default scale the shift costs the
    source-only network about 43 points (0.93 -> 0.50, close to the paper's 0.52), but DANN
    is unstable: per seed its target accuracy ranged from 0.19 to 0.67 (source-only 0.43
    to 0.60), so "DANN raises target accuracy" is inconclusive here (mean -0.08, interval
    [-0.30, 0.15]); it is not the paper's +0.24, which was measured with a CNN.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        hidden=[256, 128, 64],
        domain_hidden=64,
        steps=per_scale(60, 1000, 6000),
        batch=64,
        lr=0.01,
        momentum=0.9,
        gamma=10.0,
        contrast=0.5,
        seeds=per_scale(2, 5, 10),
    )
    gap = ctx.claim(
        "The texture shift costs a source-trained network more than 10 points of accuracy",
        quantity="source-only network's test accuracy; a = target domain, b = source domain",
        direction="<",
        margin=-0.10,
        paired=True,
    )
    helps = ctx.claim(
        "DANN raises target-domain accuracy over source-only training",
        quantity="target-domain test accuracy; a = DANN, b = source-only",
        direction=">",
        margin=0.0,
        paired=True,
    )
    below = ctx.claim(
        "DANN stays below a network trained on labelled target data",
        quantity="target-domain test accuracy; a = DANN, b = target oracle",
        direction="<",
        margin=0.0,
        paired=True,
    )
    data = task(cfg.dataset, list(range(10)))
    ctx.dataset({**data.record, "role": "source and (blended) target"})
    half = fixed_rng("dann", "split").permutation(len(data.x_train))
    s_idx, t_idx = half[: len(half) // 2], half[len(half) // 2 :]
    side = data.side
    tex_train = textures(
        len(t_idx), side, fixed_rng("dann", "textures-train"), contrast=cfg.contrast
    )
    tex_test = textures(
        len(data.x_test), side, fixed_rng("dann", "textures-test"), contrast=cfg.contrast
    )
    ctx.dataset({"name": "blended target", "source": "|x - texture|, generated gratings"})
    stats = stats_of(data.x_train[s_idx])
    xs, ys = standardise(data.x_train[s_idx], stats), data.y_train[s_idx]
    xt, yt = standardise(blend(data.x_train[t_idx], tex_train), stats), data.y_train[t_idx]
    xs_test = standardise(data.x_test, stats)
    xt_test = standardise(blend(data.x_test, tex_test), stats)

    reps: list[Replicate] = list(ctx.replicates(cfg.seeds))
    S = len(reps)
    members, keys = [], []
    for a in ARMS:
        for r, rep in enumerate(reps):
            rep.seed_torch("init")  # every arm of a seed starts from the same weights
            members.append(DANN(xs.shape[1], cfg.hidden, 10, cfg.domain_hidden))
            keys.append((a, r))
    ens = Ensemble(members)
    adv = torch.tensor([a == "dann" for a, _ in keys], dtype=torch.float32)
    oracle = torch.tensor([a == "target_oracle" for a, _ in keys])
    R, B = len(keys), cfg.batch
    dom = torch.cat([torch.zeros(B), torch.ones(B)])  # domain labels: 0 source, 1 target
    batches = zip(
        range(cfg.steps),
        member_batches(
            [batches_for_steps(len(xs), B, cfg.steps, reps[r].rng("source")) for _, r in keys]
        ),
        member_batches(
            [batches_for_steps(len(xt), B, cfg.steps, reps[r].rng("target")) for _, r in keys]
        ),
        strict=True,
    )

    def loss_fn(m, batch):
        t, i_s, i_t = batch
        lambd = dann_lambda(t / cfg.steps, cfg.gamma)
        x = torch.cat([xs[i_s], xt[i_t]], 1)  # (R, 2B, D)
        z = m.call(lambda f, xx: f(xx, lambd), x, per_member=True)
        # the oracle learns from the target's labels, the others from the source's
        lab_x = torch.where(oracle.view(R, 1, 1), z[:, B:, :10], z[:, :B, :10])
        lab_y = torch.where(oracle.view(R, 1), yt[i_t], ys[i_s])
        d = torch.nn.functional.binary_cross_entropy_with_logits(
            z[..., 10], dom.expand(R, -1), reduction="none"
        ).mean(1)
        return member_cross_entropy(lab_x, lab_y) + adv * d

    # Ganin et al. (2016)'s recipe for every arm: SGD with momentum 0.9 and the annealed rate
    # mu_p = mu_0 / (1 + 10 p)^0.75
    opt = torch.optim.SGD(ens.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    fit(
        ens,
        opt,
        loss_fn,
        batches,
        cfg.steps,
        ctx=ctx,
        desc="train",
        log_every=100,
        schedule=lambda t: cfg.lr / (1 + 10 * t / cfg.steps) ** 0.75,
    )
    acc_s = head_accuracy(ens, xs_test, data.y_test, slice(0, 10))
    acc_t = head_accuracy(ens, xt_test, data.y_test, slice(0, 10))
    res = {a: (acc_s[j * S : (j + 1) * S], acc_t[j * S : (j + 1) * S]) for j, a in enumerate(ARMS)}
    for s, rep in enumerate(reps):
        gap.add(rep.id, res["source_only"][1][s], res["source_only"][0][s])
        helps.add(rep.id, res["dann"][1][s], res["source_only"][1][s])
        below.add(rep.id, res["dann"][1][s], res["target_oracle"][1][s])
    rows = [
        {
            "arm": a,
            "source_test_acc": float(np.nanmean(res[a][0])),
            "target_test_acc": float(np.nanmean(res[a][1])),
            "target_acc_sd": float(np.nanstd(res[a][1], ddof=1)) if S > 1 else 0.0,
        }
        for a in ARMS
    ]
    ctx.table(
        "accuracy",
        rows,
        note=f"mean over {S} seeds; {cfg.steps} SGD steps, momentum {cfg.momentum}, "
        f"lr {cfg.lr} / (1 + 10 p)^0.75; textures at contrast {cfg.contrast}",
    )
    fig, ax = new_figure(1, 2, size=(10, 3.6))
    for j, a in enumerate(ARMS):
        ax[0, 0].bar(
            j - 0.2, rows[j]["source_test_acc"], 0.4, color="C0", label="source" if j == 0 else None
        )
        ax[0, 0].bar(
            j + 0.2, rows[j]["target_test_acc"], 0.4, color="C1", label="target" if j == 0 else None
        )
        ax[0, 0].scatter([j + 0.2] * S, res[a][1], color="k", s=8, zorder=3)
    ax[0, 0].set_xticks(range(len(ARMS)), ARMS)
    ax[0, 0].set(ylim=(0, 1), ylabel="test accuracy")
    ax[0, 0].legend(fontsize=8)
    show = torch.cat([data.x_test[:6], blend(data.x_test[:6], tex_test[:6])])
    grid = show.view(2, 6, side, side).permute(0, 2, 1, 3).reshape(2 * side, 6 * side)
    ax[0, 1].imshow(grid.cpu().numpy(), cmap="gray")
    ax[0, 1].set(title="source (top) and target domain (bottom)", xticks=[], yticks=[])
    ax[0, 1].grid(False)
    ctx.figure(
        "domain_adaptation",
        fig,
        "Accuracy per arm (dots: seeds on the target) and the two domains.",
    )
