r"""Domain-adversarial neural networks (DANN; Ganin & Lempitsky 2015; Ganin et al. 2016, JMLR).

A feature extractor $G_f$ feeds a label predictor $G_y$ and, through a gradient reversal
layer $R_\lambda$, a domain classifier $G_d$ that tells source from target features:

$$E(\theta_f, \theta_y, \theta_d) = \frac{1}{n}\sum_{i \in S} L_y\big(G_y(G_f(x_i)), y_i\big)
 + \frac{1}{n'}\sum_{i \in S \cup T} L_d\big(G_d(R_\lambda(G_f(x_i))), d_i\big).$$

Minimising $E$ trains $G_d$ to separate the domains and, through the reversed gradient,
$G_f$ to make them inseparable: features on which a source-trained classifier also works
on the unlabelled target (Ben-David et al. 2010 bound the target error by the source error
plus a divergence between the domains). The weight $\lambda$ rises from 0 to 1 with the
training progress $p$: $\lambda_p = 2 / (1 + e^{-\gamma p}) - 1$, $\gamma = 10$, so the
domain classifier's noisy early signal does not disturb the features (Ganin et al. 2016).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mlatlas.paradigms.transfer.grl import grad_reverse
from mlatlas.paradigms.transfer.models import TransferMLP


def dann_lambda(p: float, gamma: float = 10.0) -> float:
    """The adaptation weight at training progress p in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DANN(nn.Module):
    """`TransferMLP` features and label head, plus a domain classifier behind R_lambda.

    ``forward(x, lambd)`` returns the class logits and one domain logit side by side."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_classes: int, domain_hidden: int):
        super().__init__()
        self.net = TransferMLP(n_in, hidden, [n_classes])
        self.domain = nn.Sequential(
            nn.Linear(hidden[-1], domain_hidden), nn.ReLU(), nn.Linear(domain_hidden, 1)
        )

    def forward(self, x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
        h = self.net.features(x)
        return torch.cat([self.net.heads[0](h), self.domain(grad_reverse(h, lambd))], dim=-1)
