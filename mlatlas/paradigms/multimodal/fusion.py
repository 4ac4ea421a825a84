"""Early and late fusion of an image and a question.

late fusion   each modality is encoded on its own and only the two summary vectors meet,
              in a classifier on their concatenation:
                  y = MLP([f(x); g(q)])
              (the two-stream baselines of VQA, Antol et al. 2015)
early fusion  image patches and words enter one transformer as a single sequence, each
              token tagged with its modality, so every layer can attend across modalities:
                  h = Encoder([CLS; P x + e_img + pos; E q + e_txt + pos]),  y = W h_CLS
              (single-stream models such as VisualBERT, Li et al. 2019, and ViLT, Kim et
              al. 2021, which also embeds raw patches linearly)

Both reuse topic 7's pre-LN encoder; the late model's image encoder is topic 5's LeNet-5.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.cnn.models import LeNet5
from mlatlas.architectures.transformers.models import Encoder
from mlatlas.paradigms.multimodal.captions import CANVAS, PAD
from mlatlas.paradigms.multimodal.clip import TextEncoder


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), C p p), patches in row-major order."""
    b, c, _, _ = x.shape
    x = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, H/p, W/p, p, p)
    return x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)


class LateFusion(nn.Module):
    def __init__(self, vocab: int, max_len: int, d: int = 64, layers: int = 2, n_out: int = 2):
        super().__init__()
        self.image = LeNet5(n_classes=d, in_channels=3)
        self.text = TextEncoder(vocab, max_len, d, d=d, layers=layers)
        self.head = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, n_out))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(x), self.text(tokens)], dim=-1))


class EarlyFusion(nn.Module):
    def __init__(
        self,
        vocab: int,
        max_len: int,
        d: int = 64,
        layers: int = 2,
        patch: int = 7,
        n_out: int = 2,
    ):
        super().__init__()
        self.patch = patch
        n_patches = (CANVAS // patch) ** 2
        self.embed_patch = nn.Linear(3 * patch * patch, d)
        self.embed_word = nn.Embedding(vocab, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_image = nn.Parameter(torch.randn(n_patches, d) * 0.02)
        self.pos_text = nn.Parameter(torch.randn(max_len, d) * 0.02)
        self.modality = nn.Parameter(torch.randn(2, d) * 0.02)  # image, text
        self.encoder = Encoder(d, 4, layers, max_len=1 + n_patches + max_len, positions="none")
        self.head = nn.Linear(d, n_out)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        img = self.embed_patch(patchify(x, self.patch)) + self.pos_image + self.modality[0]
        txt = self.embed_word(tokens) + self.pos_text[: tokens.shape[1]] + self.modality[1]
        seq = torch.cat([self.cls.expand(len(x), -1, -1), img, txt], dim=1)
        pad = torch.cat(
            [tokens.new_zeros(len(x), 1 + img.shape[1], dtype=torch.bool), tokens == PAD], dim=1
        )
        return self.head(self.encoder(seq, key_padding_mask=pad)[:, 0])
