"""Loss functions written from their definitions (mean over the batch unless stated).

MSE         (1/N) sum (y_hat - y)^2
MAE         (1/N) sum |y_hat - y|
Huber       r^2/2 if |r| <= d else d (|r| - d/2)                        (Huber 1964)
BCE         -[y log s(z) + (1-y) log(1 - s(z))] = max(z,0) - z y + log(1 + e^-|z|)
CE          -log softmax(z)_y; with label smoothing e the target is (1-e) onehot + e/C
                                                                 (Szegedy et al. 2016)
KL          sum_c p_c (log p_c - log q_c), averaged over the batch
hinge       (1/C) sum_{j != y} max(0, m - z_y + z_j)            (Weston & Watkins 1999)
focal       -a_t (1 - p_t)^g log p_t                                 (Lin et al. 2017)
triplet     max(0, d(a, p) - d(a, n) + m)                      (Schroff et al. 2015)
contrastive y d^2 / 2 + (1 - y) max(0, m - d)^2 / 2                (Hadsell et al. 2006)
NT-Xent     -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t), s = cosine similarity
                                               (Oord et al. 2018; Chen et al. 2020)
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def mae(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean()


def huber(pred: Tensor, target: Tensor, delta: float = 1.0) -> Tensor:
    """Quadratic near zero, linear in the tails: robust to outliers, smooth at the optimum."""
    r = (pred - target).abs()
    return torch.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).mean()


def log_sigmoid(z: Tensor) -> Tensor:
    """log s(z) = -log(1 + e^-z), from whichever form cannot overflow:
    z - log(1 + e^z) for z < 0, -log(1 + e^-z) for z >= 0. Each branch gets a clamped input
    so that the branch torch.where discards has a finite gradient too; both are smooth at 0
    (derivative 1/2 there, unlike a form built from |z|)."""
    neg, pos = z.clamp(max=0), z.clamp(min=0)
    return torch.where(z < 0, neg - torch.log1p(torch.exp(neg)), -torch.log1p(torch.exp(-pos)))


def bce_with_logits(z: Tensor, y: Tensor, pos_weight: float | None = None) -> Tensor:
    """Binary cross-entropy on logits; `pos_weight` multiplies the positive term."""
    w = 1.0 if pos_weight is None else pos_weight
    return -(w * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)).mean()


def log_softmax(z: Tensor, dim: int = -1) -> Tensor:
    return z - z.logsumexp(dim=dim, keepdim=True)


def cross_entropy(
    z: Tensor, y: Tensor, label_smoothing: float = 0.0, weight: Tensor | None = None
) -> Tensor:
    """Mean of -sum_c t_c log softmax(z)_c with t = (1 - e) onehot(y) + e / C.

    With class weights w, each example counts w_y times and the mean divides by sum w_y
    (PyTorch's convention); smoothing then weighs each class term by w_c.
    """
    logp = log_softmax(z)
    nll = -logp.gather(1, y[:, None])[:, 0]
    if weight is None:
        smooth = -logp.mean(dim=1)
        return ((1 - label_smoothing) * nll + label_smoothing * smooth).mean()
    wy = weight[y]
    smooth = -(logp * weight).sum(dim=1) / z.shape[1]
    return ((1 - label_smoothing) * (wy * nll).sum() + label_smoothing * smooth.sum()) / wy.sum()


def kl_div(log_q: Tensor, p: Tensor) -> Tensor:
    """KL(p || q) given log q, summed over classes and averaged over the batch; 0 log 0 = 0."""
    terms = torch.where(p > 0, p * (torch.log(p.clamp(min=1e-300)) - log_q), torch.zeros_like(p))
    return terms.sum() / p.shape[0]


def multiclass_hinge(z: Tensor, y: Tensor, margin: float = 1.0) -> Tensor:
    """(1/C) sum over wrong classes j of max(0, margin - z_y + z_j), mean over the batch."""
    zy = z.gather(1, y[:, None])
    viol = (margin - zy + z).clamp(min=0)
    viol = viol.scatter(1, y[:, None], 0.0)  # the true class is not a violation
    return (viol.sum(dim=1) / z.shape[1]).mean()


def binary_hinge(z: Tensor, y_pm: Tensor) -> Tensor:
    """max(0, 1 - y z) with labels in {-1, +1} (the SVM loss)."""
    return (1 - y_pm * z).clamp(min=0).mean()


def focal_binary(z: Tensor, y: Tensor, gamma: float = 2.0, alpha: float | None = None) -> Tensor:
    """Focal loss on logits: -a_t (1 - p_t)^g log p_t, p_t the probability of the true label.

    (1 - p_t)^g shrinks the loss of well-classified examples, so the many easy negatives of
    an imbalanced problem stop dominating the gradient. g = 0 and no alpha is BCE.
    """
    z_t = torch.where(y > 0.5, z, -z)  # the logit of the true label
    logp_t = log_sigmoid(z_t)
    # (1 - p_t)^g as exp(g log(1 - p_t)) with log(1 - p_t) = log s(-z_t): for g < 1 the
    # power's derivative is infinite where p_t rounds to 1, this form stays finite
    loss = -torch.exp(gamma * log_sigmoid(-z_t)) * logp_t
    if alpha is not None:
        loss = torch.where(y > 0.5, alpha * loss, (1 - alpha) * loss)
    return loss.mean()


def focal_multiclass(z: Tensor, y: Tensor, gamma: float = 2.0) -> Tensor:
    """-(1 - p_y)^g log p_y; g = 0 is cross-entropy."""
    lse = z.logsumexp(dim=1)
    logp_y = z.gather(1, y[:, None])[:, 0] - lse
    # log(1 - p_y) = logsumexp over the other classes - logsumexp over all: finite for any z
    others = z.scatter(1, y[:, None], float("-inf"))
    log1m_p = others.logsumexp(dim=1) - lse
    return (-torch.exp(gamma * log1m_p) * logp_y).mean()


def pairwise_distance(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """|a - b + eps|_2 per row (the eps keeps the gradient finite at a = b, as torch does)."""
    return ((a - b + eps) ** 2).sum(dim=-1).sqrt()


def triplet(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0) -> Tensor:
    d_ap = pairwise_distance(anchor, positive)
    d_an = pairwise_distance(anchor, negative)
    return (d_ap - d_an + margin).clamp(min=0).mean()


def contrastive_margin(a: Tensor, b: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
    """Pull pairs of the same class together, push others at least `margin` apart."""
    d = pairwise_distance(a, b)
    return (same * d**2 + (1 - same) * (margin - d).clamp(min=0) ** 2).mean() / 2


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent / InfoNCE over 2N embeddings: (z1[i], z2[i]) are positives, every other of the
    2N - 2 embeddings is a negative. Cosine similarity, temperature t."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))  # k != i
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    logp = log_softmax(sim)
    return -logp.gather(1, target[:, None]).mean()
