"""Decoding a language model: temperature, top-k and nucleus (top-p) sampling.

Given next-token logits z, sampling draws from a reshaped distribution:

- temperature T: p_i = softmax(z / T)_i; T < 1 sharpens, T > 1 flattens, and T -> 0 puts all
  the mass on argmax z (greedy decoding);
- top-k (Fan et al. 2018): keep the k largest logits, renormalise over them;
- top-p, nucleus sampling (Holtzman et al. 2020): sort the probabilities in decreasing order
  and keep the smallest prefix whose total mass is at least p, renormalise over it. The
  nucleus adapts its size to the distribution: few tokens when the model is sure, many when
  it is not, where top-k keeps k either way.

Filters return logits with -inf outside the kept set, so they compose (temperature, then
top-k, then top-p, the order of common implementations) before one softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """z / T; T = 0 means greedy: the argmax keeps logit 0, everything else -inf."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        keep = F.one_hot(logits.argmax(-1), logits.shape[-1]).bool()
        return torch.zeros_like(logits).masked_fill(~keep, float("-inf"))
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the k largest logits of each row (ties broken by position, as topk does)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, logits.shape[-1])
    idx = logits.topk(k, dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most-likely tokens whose probability mass is >= p."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = F.softmax(logits, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass of the tokens ranked above each one
    keep_sorted = before < p  # a token is needed while the mass before it is still short of p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def sampling_probs(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution a sample is drawn from: temperature, then top-k, then top-p."""
    z = apply_temperature(logits, temperature)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return F.softmax(z, dim=-1)


def sample(
    logits: torch.Tensor,
    gen: torch.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """One token per row of (B, V) logits: shape (B, 1)."""
    return torch.multinomial(sampling_probs(logits, temperature, top_k, top_p), 1, generator=gen)


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    n: int,
    gen: torch.Generator,
    block_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Append n sampled tokens to each row of `idx` (B, T) with a causal LM `model`."""
    for _ in range(n):
        logits = model(idx[:, -block_size:])[:, -1]
        idx = torch.cat([idx, sample(logits, gen, temperature, top_k, top_p)], dim=1)
    return idx
