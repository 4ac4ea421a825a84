"""A CLIP-style dual encoder and its symmetric contrastive loss (Radford et al. 2021).

An image encoder f and a text encoder g map each modality into one d-dimensional space;
after L2 normalisation, the logits of a batch of N (image, text) pairs are

    L_ij = exp(s) * <f(x_i), g(t_j)>,     s = log(1 / tau), learned, exp(s) <= 100

and the loss is the InfoNCE loss (Oord et al. 2018) taken in both directions:

    loss = 1/2 [ CE(L, diag) + CE(L^T, diag) ]
         = -1/(2N) sum_i [ log softmax_j(L_ij)_i + log softmax_j(L_ji)_i ]

The temperature starts at tau = 0.07 and is parameterised by its log so that it stays
positive; CLIP clips the scale exp(s) at 100 "to prevent training instability". Here the
clip is a clamp of s in the forward pass, which gives the same logits as CLIP's in-place clip
of the parameter (and no gradient past the bound, where CLIP's clipped value would be pushed
back up every step).

The image encoder is topic 5's LeNet-5 with its 84 -> 10 head replaced by 84 -> d (or
topic 7's ViT with a d-dimensional head); the text encoder is topic 7's pre-LN transformer
over word tokens, read out at the end-of-text token as in CLIP.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.transformers.models import Encoder, ViT
from mlatlas.foundations.losses.functions import cross_entropy
from mlatlas.paradigms.multimodal.captions import CANVAS, EOS, PAD

INIT_TEMPERATURE = 0.07  # Radford et al. (2021)
MAX_LOGIT_SCALE = 100.0


def clip_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over an (N, N) image-by-text logit matrix whose diagonal holds the
    matching pairs; topic 3's from-scratch cross-entropy in each direction."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (cross_entropy(logits, target) + cross_entropy(logits.T, target)) / 2


def image_encoder(kind: str, dim: int) -> nn.Module:
    """A LeNet-5 (topic 5) or a small ViT (topic 7, 7x7 patches) whose head outputs `dim`."""
    if kind == "lenet":
        return LeNet5(n_classes=dim, in_channels=3)
    if kind == "vit":
        return ViT(CANVAS, 7, 3, 64, 4, 2, n_classes=dim)
    raise ValueError(f"unknown image encoder {kind!r}; known: lenet, vit")


class TextEncoder(nn.Module):
    """Word embeddings -> pre-LN transformer encoder (padding masked) -> the end-of-text
    token's state -> a linear map to the shared space."""

    def __init__(self, vocab: int, max_len: int, dim: int, d: int = 64, heads: int = 4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.encoder = Encoder(d, heads, layers, max_len=max_len)
        self.proj = nn.Linear(d, dim, bias=False)

    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, d) contextual states."""
        return self.encoder(self.tok(tokens), key_padding_mask=tokens == PAD)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.states(tokens)
        eos = (tokens == EOS).long().argmax(1)  # the first (only) end-of-text position
        return self.proj(h[torch.arange(len(tokens)), eos])


class CLIP(nn.Module):
    """Two encoders, one space, a learned temperature.

    learn_temperature is a buffer (1 or 0) rather than a flag so that members of one batched
    ensemble may differ in it; with 0 the scale stays at exp(s) for the initial s."""

    def __init__(
        self,
        image: nn.Module,
        text: nn.Module,
        temperature: float = INIT_TEMPERATURE,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        self.image, self.text = image, text
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        self.register_buffer("learn_temperature", torch.tensor(float(learn_temperature)))

    def scale(self) -> torch.Tensor:
        s = self.logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE))
        s = self.learn_temperature * s + (1 - self.learn_temperature) * s.detach()
        return s.exp()

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        z = self.image(x)
        return z / z.norm(dim=-1, keepdim=True)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        z = self.text(tokens)
        return z / z.norm(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(N, N) logits of every image against every text."""
        return self.scale() * self.encode_image(x) @ self.encode_text(tokens).T
