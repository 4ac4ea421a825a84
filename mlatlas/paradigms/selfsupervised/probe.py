r"""The linear probe: multinomial logistic regression on frozen features, the standard measure
of a self-supervised representation (Zhang, Isola & Efros 2016; Chen et al. 2020; He et al. 2021).

Features are standardised with the training set's mean and standard deviation, then
$W, b$ minimise

$$\frac{1}{N}\sum_{i=1}^N -\log \mathrm{softmax}(W h_i + b)_{y_i}
+ \frac{\lambda}{2}\lVert W\rVert_F^2,$$

a strictly convex problem, solved to convergence by L-BFGS. It is scikit-learn's
`LogisticRegression(C = 1 / (\lambda N))` (which penalises $\tfrac12\lVert W\rVert^2 + C \sum$),
and the tests check that. Probes of R representations run at once on stacked features
(R, N, d): their objectives share no parameter, so the sum has each one's optimum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale every feature by the training set's mean and std (over the N axis, -2)."""
    mean = train.mean(-2, keepdim=True)
    std = train.std(-2, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def fit_probe(
    h: torch.Tensor, y: torch.Tensor, n_classes: int, lam: float = 1e-3, max_iter: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """W (R, d, C), b (R, C) of the regularised logistic regression on h (R, N, d), y (N,)
    or (R, N); float64 for a tight optimum."""
    h = h.double()
    r, n, d = h.shape
    y = y.expand(r, n) if y.dim() == 1 else y
    w = torch.zeros(r, d, n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(r, 1, n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = h @ w + b
        ce = F.cross_entropy(logits.reshape(r * n, -1), y.reshape(-1), reduction="none")
        loss = ce.reshape(r, n).mean(1) + 0.5 * lam * w.pow(2).sum((1, 2))
        total = loss.sum()
        total.backward()
        return total

    opt.step(closure)
    return w.detach(), b.detach().squeeze(1)


def probe_accuracy(
    h_train: torch.Tensor,
    y_train: torch.Tensor,
    h_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    lam: float = 1e-3,
) -> torch.Tensor:
    """Test accuracy (R,) of a linear probe per representation; h_* are (R, N, d)."""
    finite = torch.isfinite(h_train).flatten(1).all(1) & torch.isfinite(h_test).flatten(1).all(1)
    keep = finite.reshape(-1, 1, 1)  # a diverged representation must not poison the others
    h_train, h_test = (torch.where(keep, t.double(), 0.0) for t in (h_train, h_test))
    tr, te = standardize(h_train, h_test)
    w, b = fit_probe(tr, y_train, n_classes, lam)
    pred = (te @ w + b[:, None]).argmax(-1)
    ok = (pred == y_test).double().mean(-1)
    return torch.where(finite, ok, torch.full_like(ok, float("nan")))


def probe_selected(
    h_lab: torch.Tensor,
    y_lab: torch.Tensor,
    h_val: torch.Tensor,
    y_val: torch.Tensor,
    h_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    lams: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test accuracy (R,) of the probe whose penalty lambda has the best validation accuracy,
    chosen per representation, and the chosen lambdas. h_lab (R, N, d), y_lab (R, N) or (N,)."""
    hs = (h_lab, h_val, h_test)
    finite = torch.stack([torch.isfinite(h).flatten(1).all(1) for h in hs]).all(0)
    keep = finite.reshape(-1, 1, 1)  # a diverged representation must not poison the others
    tr, va, te = standardize(*(torch.where(keep, h.double(), 0.0) for h in hs))
    best_val = torch.full((len(tr),), -1.0, dtype=torch.float64)
    best_test = torch.zeros(len(tr), dtype=torch.float64)
    chosen = torch.zeros(len(tr), dtype=torch.float64)
    for lam in lams:
        w, b = fit_probe(tr, y_lab, n_classes, lam)
        val = ((va @ w + b[:, None]).argmax(-1) == y_val).double().mean(-1)
        test = ((te @ w + b[:, None]).argmax(-1) == y_test).double().mean(-1)
        better = val > best_val  # a tie keeps the smaller lambda, tried first
        best_val = torch.where(better, val, best_val)
        best_test = torch.where(better, test, best_test)
        chosen = torch.where(better, torch.full_like(chosen, lam), chosen)
    return torch.where(finite, best_test, torch.full_like(best_test, float("nan"))), chosen
