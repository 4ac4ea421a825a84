"""Lab: how transferable each layer's features are (Yosinski et al. 2014): copy the first k
layers of a source network, frozen or fine-tuned, and train the rest on the target."""

from __future__ import annotations

import numpy as np
import torch

from mlatlas.core import Lab, fit, lab, new_figure, per_scale
from mlatlas.core.ensemble import Ensemble, member_batches, member_cross_entropy
from mlatlas.core.power import replicate_note
from mlatlas.core.seeding import Replicate
from mlatlas.core.train import batches_for_steps
from mlatlas.paradigms.transfer.data import standardise, stats_of, task
from mlatlas.paradigms.transfer.finetune import layer_of, mask_members
from mlatlas.paradigms.transfer.models import TransferMLP
from mlatlas.paradigms.transfer.train import head_accuracy, pretrain


@lab("transfer", insights=["Feature transferability"])
def layer_transfer(ctx: Lab) -> None:
    """Transferability by layer: copy the first k layers of a source network, frozen or
    fine-tuned, and train the layers above from scratch on the target.

    Yosinski et al. (2014) split ImageNet's classes into halves A and B and found that
    copying the first n layers of a network trained on A and freezing them ("AnB") hurts on
    B more as n grows (higher layers are more specific to A, and splitting co-adapted
    middle layers is fragile), that fine-tuning the copied layers ("AnB+") does at least as
    well as training on B alone, and that a more dissimilar source transfers worse.

    Here A = digits 0-4 and B = digits 5-9 of MNIST (a fixed subset of B for training), and
    a dissimilar source A' = Fashion-MNIST's ten classes (at smoke scale, without downloads,
    A' repeats A). The trunk has three hidden layers; k = 0 is the baseline trained on B
    alone. All arms of a seed share the initialisation of the layers above k and the
    target batches (one batched ensemble), Adam at one fixed learning rate, no tuning.

    At default scale all three findings of the paper hold for this MLP: frozen, the
    copied first layer even helps (0.947 against 0.939 for the baseline) while three
    frozen layers cost 20 points (0.737); fine-tuned, every k beats the baseline by about
    one point; Fashion-MNIST features transfer worse than digit features at every k.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        dissimilar=per_scale(
            ("digits", [0, 1, 2, 3, 4]),
            ("fashion-mnist", list(range(10))),
            ("fashion-mnist", list(range(10))),
        ),
        source=[0, 1, 2, 3, 4],
        target=[5, 6, 7, 8, 9],
        n_target=per_scale(300, 1000, 5000),
        hidden=[256, 128, 64],
        pretrain_steps=per_scale(150, 1500, 6000),
        steps=per_scale(60, 600, 3000),
        batch=64,
        lr=1e-3,
        seeds=per_scale(2, 7, 10),
    )
    L = len(cfg.hidden)
    ks = list(range(1, L + 1))
    deeper = ctx.claim(
        f"Frozen transfer hurts more the more layers are copied: copying all {L} layers "
        "frozen (AnB) gives lower target accuracy than copying the first one",
        quantity=f"target test accuracy; a = A{L}B frozen, b = A1B frozen",
        direction="<",
        margin=0.0,
        paired=True,
    )
    plus = ctx.claim(
        "Copying the first k layers and fine-tuning them (AnB+) beats training on the target "
        "alone, at every k",
        quantity="target test accuracy; a = AnB+, b = baseline B; one part per k",
        direction=">",
        margin=0.0,
        paired=True,
    )
    far = ctx.claim(
        f"A dissimilar source transfers worse: with all {L} layers copied and frozen, "
        f"features from {cfg.dissimilar[0]} give lower target accuracy than from digits 0-4",
        quantity=f"target test accuracy; a = A'{L}B frozen, b = A{L}B frozen",
        direction="<",
        margin=0.0,
        paired=True,
    )
    src, tgt = task(cfg.dataset, cfg.source), task(cfg.dataset, cfg.target, cfg.n_target)
    far_src = task(cfg.dissimilar[0], list(cfg.dissimilar[1]))
    for t, role in ((src, "source A"), (tgt, "target B"), (far_src, "dissimilar source A'")):
        ctx.dataset({**t.record, "role": role})
    stats = stats_of(src.x_train)
    xt, xt_test = standardise(tgt.x_train, stats), standardise(tgt.x_test, stats)
    n_in = xt.shape[1]
    reps: list[Replicate] = list(ctx.replicates(cfg.seeds))
    replicate_note(ctx, cfg.seeds, {"a dissimilar source transfers worse": 7})
    S = len(reps)
    nets = {}
    for name, t in (("A", src), ("A'", far_src)):

        def build(t=t) -> TransferMLP:
            return TransferMLP(n_in, cfg.hidden, [t.n_classes])

        nets[name], _ = pretrain(
            reps,
            standardise(t.x_train, stats),  # one input scale: the target's inputs fit both
            t.y_train,
            build,
            cfg.pretrain_steps,
            cfg.batch,
            cfg.lr,
            ctx=ctx,
            desc=f"pretrain {name}",
        )
    # arms: (source, k, frozen); ("B", 0, False) is the baseline trained on B alone
    arms = [("B", 0, False)]
    arms += [("A", k, fz) for k in ks for fz in (True, False)]
    arms += [("A'", k, True) for k in ks]
    members, keys = [], []
    for a in arms:
        for r, rep in enumerate(reps):
            rep.seed_torch("target-init")  # the same fresh layers above k for every arm
            m = TransferMLP(n_in, cfg.hidden, [tgt.n_classes])
            source, k, _ = a
            if k:
                donor = nets[source].member(r)
                for i in range(k):
                    m.trunk[i].load_state_dict(donor.trunk[i].state_dict())
            members.append(m.train())
            keys.append((a, r))
    ens = Ensemble(members)
    layers = ens.base.layer_names()
    mask_members(
        ens, lambda i, name: not (keys[i][0][2] and layer_of(name, layers) < keys[i][0][1])
    )
    batches = member_batches(
        [batches_for_steps(len(xt), cfg.batch, cfg.steps, reps[r].rng("batches")) for _, r in keys]
    )

    def loss_fn(m, idx):
        return member_cross_entropy(m(xt[idx], per_member=True), tgt.y_train[idx])

    opt = torch.optim.Adam([p for p in ens.parameters() if p.requires_grad], lr=cfg.lr)
    fit(ens, opt, loss_fn, batches, cfg.steps, ctx=ctx, desc="target", log_every=100)
    got = head_accuracy(ens, xt_test, tgt.y_test, slice(0, tgt.n_classes))
    acc = {a: got[j * S : (j + 1) * S] for j, a in enumerate(arms)}
    base = acc[("B", 0, False)]
    for s, rep in enumerate(reps):
        deeper.add(rep.id, acc[("A", L, True)][s], acc[("A", 1, True)][s])
        for k in ks:
            plus.add(rep.id, acc[("A", k, False)][s], base[s], part=f"k={k}")
        far.add(rep.id, acc[("A'", L, True)][s], acc[("A", L, True)][s])
    label = {True: "frozen", False: "fine-tuned"}
    rows = [
        {
            "source": src_name if k else "none (baseline B)",
            "layers_copied": k,
            "copied_layers": label[fz] if k else "-",
            "mean_acc": float(np.nanmean(acc[(src_name, k, fz)])),
            "sd_acc": float(np.nanstd(acc[(src_name, k, fz)], ddof=1)) if S > 1 else 0.0,
        }
        for src_name, k, fz in arms
    ]
    ctx.table(
        "transfer_by_layer",
        rows,
        note=f"target test accuracy, {S} seeds, {len(xt)} target training examples",
    )
    fig, ax = new_figure(1, 1, size=(5.5, 3.8))
    for (source, fz), style in {("A", True): "o-", ("A", False): "s--", ("A'", True): "^:"}.items():
        m = [np.nanmean(base)] + [np.nanmean(acc[(source, k, fz)]) for k in ks]
        ax[0, 0].plot([0, *ks], m, style, label=f"{source}nB{'' if fz else '+'} ({label[fz]})")
    for s in range(S):
        ax[0, 0].scatter([0], [base[s]], color="k", s=6)
    ax[0, 0].set(
        xlabel="layers copied from the source (k)", ylabel="target test accuracy", xticks=[0, *ks]
    )
    ax[0, 0].legend(fontsize=8)
    ctx.figure(
        "transfer_by_layer",
        fig,
        "Target accuracy after copying the first k layers (mean over seeds); k = 0 is the "
        "baseline trained on the target alone.",
    )
