"""Lab: the from-scratch engine and PyTorch train the same MLP to the same numbers."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale, save_checkpoint
from mlatlas.core.data import load_digits, record
from mlatlas.core.train import make_mlp, minibatches
from mlatlas.foundations.backprop.autograd import Tensor, cross_entropy, no_grad
from mlatlas.foundations.backprop.nn import MLP, SGD


@lab("backprop", insights=["gradient flow"])
def engine_equals_torch(ctx: Lab) -> None:
    """The from-scratch engine and PyTorch train the same MLP to the same numbers.

    Same initial weights, same minibatches, same SGD with momentum, both in float64: if the
    engine's gradients are right, the two loss curves agree to rounding error. That agreement
    is an equivalence, so it is a check (the largest loss difference over every step of every
    seed). The test accuracy the engine reaches depends on the seed's init and batch order;
    one seed costs about a second here, so it is an experiment over seeds. The held-out
    quarter of digits is a fixed split (it does not change with --seed).

    The training loop is written out, not `core.train.fit`: stepping both engines side by side
    is the lesson.
    """
    cfg = ctx.config(
        hidden=[128, 64],
        epochs=per_scale(2, 30, 100),
        batch=32,
        lr=0.05,
        momentum=0.9,
        test_size=0.25,
        seeds=per_scale(2, 5, 10),
    )
    x, y = load_digits()
    ctx.dataset(record("sklearn-digits"))
    split_seed = int(fixed_rng("digits-split").integers(2**31))
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=cfg.test_size, random_state=split_seed, stratify=y
    )
    sizes = [x.shape[1], *cfg.hidden, 10]
    xt_ref, yt_ref = torch.as_tensor(x_tr), torch.as_tensor(y_tr)
    acc_claim = ctx.claim(
        f"The MLP trained with our engine reaches >= 95% test accuracy on digits "
        f"({len(y_te)} held-out images)",
        quantity=f"per-seed test accuracy after {cfg.epochs} epochs of SGD with momentum",
        direction=">",
        margin=0.95,
        on_failure=0.1,  # a diverged run scores chance accuracy
    )

    max_diff, rows, curves, first = 0.0, [], None, None
    for rep in ctx.replicates(cfg.seeds):
        ours = MLP(sizes, rep.rng("init"), activation="relu")
        ref = make_mlp(sizes, "relu").double()
        with torch.no_grad():
            for layer, lin in zip(ours.layers, ref[::2], strict=True):
                lin.weight.copy_(torch.from_numpy(layer.weight.data))
                lin.bias.copy_(torch.from_numpy(layer.bias.data))
        opt_ours = SGD(ours.parameters(), cfg.lr, cfg.momentum)
        opt_ref = torch.optim.SGD(ref.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        batch_rng = rep.rng("batches")

        curve_ours, curve_ref = [], []
        for epoch in ctx.progress(cfg.epochs, desc=f"seed {rep.id} epochs"):
            for idx in minibatches(len(x_tr), cfg.batch, batch_rng):
                opt_ours.zero_grad()
                loss = cross_entropy(ours(Tensor(x_tr[idx])), y_tr[idx])
                loss.backward()
                opt_ours.step()

                opt_ref.zero_grad()
                loss_ref = torch.nn.functional.cross_entropy(ref(xt_ref[idx]), yt_ref[idx])
                loss_ref.backward()
                opt_ref.step()

                curve_ours.append(loss.item())
                curve_ref.append(loss_ref.item())
            ctx.log(step=len(curve_ours), seed=rep.id, epoch=epoch, loss_ours=curve_ours[-1])
        diff = np.abs(np.array(curve_ours) - np.array(curve_ref))
        max_diff = max(max_diff, float(np.nan_to_num(diff, nan=np.inf).max()))

        with no_grad():
            acc_ours = float((ours(Tensor(x_te)).data.argmax(1) == y_te).mean())
        with torch.no_grad():
            acc_ref = float((ref(torch.as_tensor(x_te)).argmax(1).cpu().numpy() == y_te).mean())
        final = curve_ours[-1]
        acc_claim.add(rep.id, acc_ours if np.isfinite(final) else np.nan)
        rows.append(
            {
                "seed": rep.id,
                "final_loss_ours": final,
                "final_loss_torch": curve_ref[-1],
                "max_abs_loss_difference": float(diff.max()),
                "test_accuracy_ours": acc_ours,
                "test_accuracy_torch": acc_ref,
            }
        )
        if first is None:
            first, curves = ours, (curve_ours, curve_ref)

    steps = len(curves[0])
    ctx.check(
        f"Our engine and PyTorch give the same loss at every one of the {steps} steps, for "
        f"each of {cfg.seeds} seeds (max |difference| <= 1e-6)",
        max_diff,
        direction="<=",
        bound=1e-6,
        quantity="max over seeds and steps of |loss_ours - loss_torch| (float64)",
    )
    ctx.metric("max_abs_loss_difference", max_diff)
    ctx.metric("steps_per_seed", steps)
    ctx.metric("test_accuracy_ours_mean", float(np.mean([r["test_accuracy_ours"] for r in rows])))
    ctx.table("engines", rows, note=f"test: {len(y_te)} held-out digits (fixed split)")

    fig, ax = new_figure(1, 2, size=(9.5, 3.4))
    ax[0, 0].semilogy(curves[0], lw=1, label="mlatlas")
    ax[0, 0].semilogy(curves[1], lw=1, ls="--", label="torch")
    ax[0, 0].set(title="training loss (seed 0)", xlabel="step", ylabel="cross-entropy")
    ax[0, 0].legend()
    ax[0, 1].semilogy(np.abs(np.array(curves[0]) - np.array(curves[1])) + 1e-20, lw=0.8)
    ax[0, 1].set(title="|loss_mlatlas - loss_torch| (seed 0)", xlabel="step")
    ctx.figure("loss_curves", fig, "Identical training runs of the two engines.")
    save_checkpoint(
        ctx.checkpoint_path("mlp_final"),
        {name: torch.from_numpy(p.data) for name, p in first.named_parameters()},
        {
            "sizes": sizes,
            "epochs": cfg.epochs,
            "seed_id": 0,
            "test_accuracy": rows[0]["test_accuracy_ours"],
        },
    )
