r"""Masked autoencoder (He, Chen, Xie, Li, Dollár & Girshick 2021) on topic 7's ViT.

Cut the image into $L$ patches, keep a random $(1 - m)L$ of them (mask ratio $m = 0.75$ in the
paper), run the encoder on the visible patches only, then a small decoder on the full
sequence (encoded visible tokens, a shared learned mask token at every masked place, positions
added again) that predicts each patch's pixels. The loss is the mean squared error on the
*masked* patches only,

$$\mathcal{L} = \frac{1}{|M|} \sum_{i \in M} \frac{1}{P} \lVert \hat{x}_i - \tilde{x}_i \rVert^2,$$

where $\tilde{x}_i$ is patch $i$ normalised by its own mean and variance (the paper's
"norm_pix_loss", which it found gives better representations). Masking is a random permutation
per image: sort uniform noise, keep the first $(1-m)L$ indices (`ids_keep`), and invert the
permutation (`ids_restore`) to put the decoder's sequence back in image order.
"""

from __future__ import annotations

import torch
from torch import nn

from mlatlas.architectures.transformers.models import Encoder
from mlatlas.paradigms.selfsupervised.encoders import ViTEncoder


def random_masking(noise: torch.Tensor, mask_ratio: float):
    """From uniform noise (B, L): ids_keep (B, K) of the K = int(L (1 - m)) kept patches,
    ids_restore (B, L) that undoes the shuffle, and mask (B, L), 1 where a patch is hidden."""
    b, length = noise.shape
    keep = int(length * (1 - mask_ratio))
    ids_shuffle = noise.argsort(dim=1)  # ascending: the smallest noise is kept
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(b, length, dtype=noise.dtype)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], ids_restore, mask.gather(1, ids_restore)


def take(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """tokens (B, L, d) at positions ids (B, K) -> (B, K, d)."""
    return tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def unshuffle(shuffled: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Tokens in shuffled order (kept first, then masked) back to image order."""
    return take(shuffled, ids_restore)


def normalized_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch minus its mean, over its standard deviation (MAE's norm_pix_loss target)."""
    mean = patches.mean(-1, keepdim=True)
    var = patches.var(-1, keepdim=True, unbiased=True)
    return (patches - mean) / (var + eps).sqrt()


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked patches (mask = 1) of the per-patch mean squared error."""
    per_patch = (pred - target).pow(2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


class MAE(nn.Module):
    """A ViT encoder (`ViTEncoder`, whose weights the probe later reads) and a light decoder."""

    def __init__(
        self,
        encoder: ViTEncoder,
        dec_d: int = 32,
        dec_heads: int = 2,
        dec_layers: int = 1,
        mask_ratio: float = 0.75,
        norm_pix: bool = True,
    ) -> None:
        super().__init__()
        vit = encoder.vit
        self.encoder, self.mask_ratio, self.norm_pix = encoder, mask_ratio, norm_pix
        n_patches = vit.encoder.pos.table.shape[0] - 1
        self.dec_embed = nn.Linear(encoder.dim, dec_d)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dec_d) * 0.02)
        self.decoder = Encoder(dec_d, dec_heads, dec_layers, max_len=n_patches + 1)
        self.pred = nn.Linear(dec_d, vit.embed.in_features)

    def encode_visible(self, x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encoder over the class token and the kept patches, positions added before masking."""
        vit = self.encoder.vit
        table = vit.encoder.pos.table
        tokens = take(vit.embed(vit.patches(x)) + table[1:], ids_keep)
        cls = (vit.cls + table[:1]).expand(len(x), -1, -1)
        h = torch.cat([cls, tokens], dim=1)
        for block in vit.encoder.blocks:
            h = block(h)
        return vit.encoder.ln(h)

    def reconstruct(self, x: torch.Tensor, noise: torch.Tensor):
        """Predicted patches (B, L, P), their targets and the mask, for masking noise (B, L)."""
        ids_keep, ids_restore, mask = random_masking(noise, self.mask_ratio)
        h = self.dec_embed(self.encode_visible(x, ids_keep))
        b, length = noise.shape
        fill = self.mask_token.expand(b, length - ids_keep.shape[1], -1)
        seq = unshuffle(torch.cat([h[:, 1:], fill], dim=1), ids_restore)
        out = self.decoder(torch.cat([h[:, :1], seq], dim=1))  # adds decoder positions
        target = self.encoder.vit.patches(x)
        if self.norm_pix:
            target = normalized_patches(target)
        return self.pred(out[:, 1:]), target, mask

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, features: bool = False
    ) -> torch.Tensor:
        """The MAE loss for masking noise (B, L); with ``features=True``, h = f(x) on the
        whole image (what the probe reads)."""
        if features or noise is None:
            return self.encoder(x)
        pred, target, mask = self.reconstruct(x, noise)
        return masked_mse(pred, target, mask)
