"""Zero-shot classification and cross-modal retrieval as nearest-neighbour lookups.

Zero-shot (Radford et al. 2021): embed one caption per class ("a picture of a {cls}") and
label an image with the class whose caption is most similar. Prompt ensembling embeds P
captions per class, averages the normalised embeddings and renormalises,

    w_c = m_c / |m_c|,   m_c = (1/P) sum_p g(t_cp) / |g(t_cp)|,      y_hat = argmax_c <f(x), w_c>

which CLIP reports adds 3.5 points of ImageNet accuracy over a single default prompt
(Radford et al. 2021, section 3.1.4).

Retrieval: for each query (an image, or a text), rank the gallery of the other modality by
cosine similarity; Recall@K is the share of queries whose match is among the top K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def ensemble_prompts(text_emb: torch.Tensor) -> torch.Tensor:
    """(C, P, d) embeddings of P prompts per class -> (C, d) unit class vectors."""
    e = text_emb / text_emb.norm(dim=-1, keepdim=True)
    m = e.mean(dim=1)
    return m / m.norm(dim=-1, keepdim=True)


def zero_shot_predict(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """Class with the most similar class vector, for each (normalised) image embedding."""
    return (image_emb @ class_emb.T).argmax(-1)


def recall_at_k(sim: torch.Tensor, match: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """sim (Q, G) query-by-gallery similarities, match (Q,) the gallery index of each query's
    match: {K: share of queries whose match ranks in the top K}, its rank being the number of
    gallery items that score strictly higher."""
    own = sim.gather(1, match[:, None])
    rank = (sim > own).sum(1)  # items strictly better than the match
    return {k: float((rank < k).double().mean()) for k in ks}
