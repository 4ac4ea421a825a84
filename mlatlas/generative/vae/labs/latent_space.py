"""Lab: a 2-D latent space, its manifold and its interpolations."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier

from mlatlas.core import Lab, fixed_rng, lab, new_figure, per_scale
from mlatlas.core.figures import image_grid
from mlatlas.generative.vae.model import VAE
from mlatlas.generative.vae.train import (
    fit_vaes,
    fixed_binarization,
    image_intensities,
    member_posteriors,
)
from mlatlas.generative.vae.yardstick import yardstick_for


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test) -> float:
    """Test accuracy of a 5-nearest-neighbour classifier in a 2-D code."""
    knn = KNeighborsClassifier(n_neighbors=5).fit(train, y_train)
    return float((knn.predict(test) == np.asarray(y_test)).mean())


def decode(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """E[x | z] for codes z (n, 2)."""
    with torch.no_grad():
        return model.decoder.mean(model.decoder(z))


@lab("vae", insights=["Latent space modeling"])
def latent_space(ctx: Lab) -> None:
    """A VAE with a 2-D latent space: the manifold it learns, and walks through it.

    With d = 2 the whole latent space can be drawn (Kingma & Welling 2014, figure 4): decoding
    a grid of z at the prior's quantiles shows digits morphing smoothly into one another,
    because the KL term packs the posteriors of all training images into one Gaussian blob
    with few empty regions. VAEs (784-256-2, Bernoulli decoder) are trained on dynamically
    binarized digits; two measurements test that the space is organised:

    - interpolation: for pairs of held-out images of different classes, the decoded midpoint
      of their posterior means against the pixel average of the two decoded endpoints (a
      cross-fade of the same blurry decoder's outputs, so blur is on both sides), each scored
      by the yardstick's classifier (its mean top-class probability; a logistic regression on
      pixels for the 8x8 digits at smoke scale). The claim: latent midpoints are classified
      more confidently, i.e. they look like one digit rather than two overlaid;
    - class structure: 5-NN accuracy on held-out posterior means, against the same classifier
      on the first two principal components of the same binarized pixels (PCA is
      deterministic: its accuracy, measured first, is the claim's margin). The claim: the
      2-D code separates the classes better.

    A first run at the default scale (five seeds, 2,500 steps, run seed 0) compared the
    midpoints with cross-fades of the two *real* images (inconclusive: 0.67 to 0.78 per seed
    against 0.76) and PCA of the grey pixels (5-NN 0.41 against the codes' 0.55 to 0.60,
    supported): sharp real strokes against a blurry decoder confounded the first, and the
    paired form skipped the core's skew guard for what is a one-sample test against a
    constant. Both are restated above; the real cross-fade's confidence stays in the table.
    Restated, at the same scale, both were supported: latent midpoints were classified with
    0.69 to 0.76 confidence, cross-fades of the decoded endpoints with 0.53 to 0.57
    (difference 0.18, [0.14, 0.22]); 5-NN accuracy of the codes 0.57 to 0.62 against PCA's
    0.423 on the same binarized pixels.
    """
    cfg = ctx.config(
        dataset=per_scale("digits", "mnist", "mnist"),
        seeds=per_scale(2, 5, 8),
        steps=per_scale(150, 2500, 20000),
        hidden=per_scale((64,), (256,), (512,)),
        batch=100,
        lr=2e-3,
        n_test=per_scale(300, 5000, 10000),
        n_probe=per_scale(1000, 10000, 60000),
        pairs=per_scale(100, 1000, 5000),
        grid=per_scale(10, 20, 25),
    )
    crisp = ctx.claim(
        "Decoded latent midpoints are classified more confidently than cross-fades of the two "
        "decoded endpoints",
        quantity="per seed: mean top-class probability over pairs; a = decoded latent "
        "midpoint, b = pixel average of the two decoded endpoints",
        direction=">",
        margin=0.0,
        paired=True,
    )
    data = image_intensities(cfg.dataset, n_train=cfg.n_probe, n_test=cfg.n_test)
    full = image_intensities(cfg.dataset)
    ctx.dataset(full.record)
    # the baseline first: PCA of the same binarized inputs the encoders see; its accuracy,
    # deterministic, is the margin the VAE codes are tested against
    bin_train, bin_test = fixed_binarization(data.train), fixed_binarization(data.test)
    pca = PCA(2, random_state=0).fit(bin_train.numpy())
    acc_pca = knn_accuracy(
        pca.transform(bin_train.numpy()), data.y_train, pca.transform(bin_test.numpy()), data.y_test
    )
    separates = ctx.claim(
        f"A 2-D VAE code separates digit classes better than 2-D PCA (5-NN accuracy {acc_pca:.3f})",
        quantity="per seed: 5-NN test accuracy of the VAE posterior means",
        direction=">",
        margin=acc_pca,
    )
    reps = list(ctx.replicates(cfg.seeds))
    x_dim = data.train.shape[1]
    ens, res = fit_vaes(
        ctx,
        reps,
        full.train,
        lambda: VAE(x_dim, cfg.hidden, 2),
        steps=cfg.steps,
        batch=cfg.batch,
        lr=cfg.lr,
    )
    judge = yardstick_for(cfg.dataset, data.test, data.train, data.y_train)
    rng = fixed_rng("latent-pairs")
    a = rng.integers(0, len(data.test), cfg.pairs)
    b = rng.integers(0, len(data.test), cfg.pairs)
    keep = (data.y_test[a] != data.y_test[b]).numpy()
    a, b = a[keep], b[keep]
    conf_raw = float(judge.probabilities(0.5 * (data.test[a] + data.test[b])).max(1).values.mean())
    mu_train, _ = member_posteriors(ens, bin_train)
    mu_test, _ = member_posteriors(ens, bin_test)
    rows = []
    for r, rep in enumerate(reps):
        model = ens.member(r)
        mid = decode(model, 0.5 * (mu_test[r, a] + mu_test[r, b]))
        fade = 0.5 * (decode(model, mu_test[r, a]) + decode(model, mu_test[r, b]))
        conf = float(judge.probabilities(mid).max(1).values.mean())
        conf_fade = float(judge.probabilities(fade).max(1).values.mean())
        acc = knn_accuracy(mu_train[r].numpy(), data.y_train, mu_test[r].numpy(), data.y_test)
        if res.diverged[r]:
            conf = conf_fade = acc = float("nan")
        crisp.add(rep.id, conf, conf_fade)
        separates.add(rep.id, acc)
        rows.append(
            {
                "seed": rep.id,
                "latent midpoint confidence": conf,
                "decoded cross-fade confidence": conf_fade,
                "real cross-fade confidence": conf_raw,
                "5-NN accuracy, VAE code": acc,
                "5-NN accuracy, PCA": acc_pca,
            }
        )
    ctx.table(
        "latent_space",
        rows,
        note=f"{len(a)} pairs of held-out images of different classes; 5-NN fitted on "
        f"{len(data.train)} training codes, scored on {len(data.test)} held-out codes",
    )
    model, side = ens.member(0), data.side
    q = norm.ppf(np.linspace(0.05, 0.95, cfg.grid))
    zz = torch.tensor([[u, v] for v in q[::-1] for u in q], dtype=torch.float32)
    fig, ax = new_figure(1, 2, size=(12, 6))
    image_grid(ax[0, 0], decode(model, zz).numpy(), side, cfg.grid, "decoded prior quantiles")
    m = mu_test[0].numpy()
    for c in range(10):
        sel = data.y_test.numpy() == c
        ax[0, 1].scatter(m[sel, 0], m[sel, 1], s=2, color=f"C{c}", label=str(c))
    ax[0, 1].set(xlabel="z1", ylabel="z2", title="posterior means of held-out digits, seed 0")
    ax[0, 1].legend(markerscale=4, fontsize=7, ncol=2)
    ctx.figure("manifold", fig, "The learned 2-D manifold and the held-out codes (seed 0).")
    t = torch.linspace(0, 1, 8)[:, None]
    tiles = []
    for i in range(4):
        za, zb = mu_test[0, a[i]], mu_test[0, b[i]]
        tiles.append(decode(model, (1 - t) * za + t * zb))
        tiles.append((1 - t) * data.test[a[i]] + t * data.test[b[i]])
    fig, ax = new_figure(1, 1, size=(6, 6.4))
    image_grid(ax[0, 0], torch.cat(tiles).numpy(), side, 8, "rows: latent walk, then cross-fade")
    ctx.figure("interpolations", fig, "Four pairs: the latent interpolation above the pixel one.")
    ctx.metric("train_loss_final", res.final_loss)
