"""Pre-LN transformer blocks, a GPT decoder, an encoder and a vision transformer.

block:  x <- x + Attn(LN(x));  x <- x + MLP(LN(x)),  MLP = Linear(d, 4d)-GELU-Linear(4d, d)
        (pre-LN: Xiong et al. 2020; GPT-2, Radford et al. 2019)
GPT:    token + position embeddings, causal blocks, LN, a head that shares the token
        embedding matrix (weight tying, Press & Wolf 2017)
ViT:    16x16 (here p x p) patches, linearly embedded, a [class] token, learned positions,
        encoder blocks, a linear head on the class token (Dosovitskiy et al. 2021)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mlatlas.architectures.transformers.attention import (
    MultiheadAttention,
    RotaryEmbedding,
    sinusoidal_positions,
)

POSITIONS = ("learned", "sinusoidal", "rope", "none")


class Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float = 0.0, kernel: str = "ours") -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = MultiheadAttention(d, heads, kernel=kernel)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, causal=False, key_padding_mask=None, rope=None, keep_weights=False):
        h = self.ln1(x)
        a, w = self.attn(h, h, h, key_padding_mask=key_padding_mask, is_causal=causal, rope=rope)
        if keep_weights and w is not None:
            self.last_weights = w.detach()
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x)))


class _Positions(nn.Module):
    """Adds (learned or sinusoidal) position vectors, or hands out a rotary embedding."""

    def __init__(self, kind: str, max_len: int, d: int, heads: int) -> None:
        super().__init__()
        if kind not in POSITIONS:
            raise ValueError(f"unknown position encoding {kind!r}; known: {', '.join(POSITIONS)}")
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, d) * 0.02)
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_positions(max_len, d), persistent=False)
        self.rope = RotaryEmbedding(d // heads, max_len) if kind == "rope" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind in ("learned", "sinusoidal"):
            return x + self.table[: x.shape[1]]
        return x


@dataclass
class GPTConfig:
    vocab: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    positions: str = "learned"
    kernel: str = "ours"  # "torch": F.scaled_dot_product_attention for speed


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.pos = _Positions(cfg.positions, cfg.block_size, cfg.n_embd, cfg.n_head)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.kernel) for _ in range(cfg.n_layer)
        )
        self.ln = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying: one matrix embeds and unembeds
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, keep_weights: bool = False) -> torch.Tensor:
        if idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} exceeds block_size {self.cfg.block_size}")
        x = self.drop(self.pos(self.tok(idx)))
        for block in self.blocks:
            x = block(x, causal=True, rope=self.pos.rope, keep_weights=keep_weights)
        return self.head(self.ln(x))

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        n: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append n tokens, sampling from softmax(logits / temperature) over the top_k."""
        for _ in range(n):
            logits = self(idx[:, -self.cfg.block_size :])[:, -1] / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


class Encoder(nn.Module):
    """Bidirectional blocks over a (B, T, d) sequence, with optional padding mask."""

    def __init__(
        self, d: int, heads: int, layers: int, max_len: int = 512, positions: str = "learned"
    ):
        super().__init__()
        self.pos = _Positions(positions, max_len, d, heads)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, keep_weights=False
    ):
        x = self.pos(x)
        for block in self.blocks:
            x = block(
                x, key_padding_mask=key_padding_mask, rope=self.pos.rope, keep_weights=keep_weights
            )
        return self.ln(x)


class ViT(nn.Module):
    def __init__(
        self,
        image: int = 28,
        patch: int = 7,
        channels: int = 1,
        d: int = 64,
        heads: int = 4,
        layers: int = 4,
        n_classes: int = 10,
    ) -> None:
        super().__init__()
        if image % patch:
            raise ValueError(f"image size {image} is not a multiple of patch size {patch}")
        self.patch = patch
        n_patches = (image // patch) ** 2
        self.embed = nn.Linear(channels * patch * patch, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = Encoder(d, heads, layers, max_len=n_patches + 1)
        self.head = nn.Linear(d, n_classes)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, C p p), row-major over the patch grid."""
        p = self.patch
        b, c, _, _ = x.shape
        x = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, H/p, W/p, p, p)
        return x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(self.patches(x))
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])
