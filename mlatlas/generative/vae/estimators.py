r"""Two unbiased estimators of $\nabla_\phi\, \mathbb E_{q_\phi(z)}[f(z)]$, as surrogate losses.

**Reparameterization** (pathwise; Kingma & Welling 2014, Rezende et al. 2014): write
$z = \mu_\phi + \sigma_\phi \odot \varepsilon$ with $\varepsilon \sim \mathcal N(0, I)$, then

$$\nabla_\phi\, \mathbb E_q[f(z)] = \mathbb E_\varepsilon[\nabla_\phi f(\mu_\phi + \sigma_\phi
\odot \varepsilon)],$$

which uses $f$'s gradient. **Score function** (REINFORCE, likelihood ratio; Williams 1992):

$$\nabla_\phi\, \mathbb E_q[f(z)] = \mathbb E_q[(f(z) - b)\, \nabla_\phi \log q_\phi(z)],$$

which needs only values of $f$, for any baseline $b$ that does not depend on $z$ (because
$\mathbb E_q[\nabla_\phi \log q_\phi] = 0$). Both are unbiased; the score function's variance is
typically orders of magnitude larger, which is why VAEs train with the first. Each function
returns a scalar whose gradient, by autograd, is one draw of the estimator.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from mlatlas.generative.vae.elbo import log_normal, reparameterize


def reparameterization_surrogate(
    f: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, eps: Tensor
) -> Tensor:
    """sum f(mu + sigma * eps): its gradient w.r.t. (mu, logvar) is the pathwise estimator."""
    return f(reparameterize(mu, logvar, eps)).sum()


def score_function_surrogate(
    f: Callable[[Tensor], Tensor],
    mu: Tensor,
    logvar: Tensor,
    eps: Tensor,
    baseline: Tensor | float = 0.0,
) -> Tensor:
    """sum (f(z) - b) log q(z), z = mu + sigma * eps held fixed: its gradient w.r.t. (mu, logvar)
    is the score-function estimator (f's gradient is never used)."""
    z = reparameterize(mu, logvar, eps).detach()  # a sample, not a path
    weight = (f(z) - baseline).detach()
    return (weight * log_normal(z, mu, logvar)).sum()
