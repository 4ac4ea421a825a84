"""Attention from matrix products and a softmax, and the position encodings it needs.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V                 (Vaswani et al. 2017)

M is 0 where a query may look and -inf where it may not (causal: key position > query
position; padding: keys that are not real tokens). Multi-head attention projects Q, K, V
into h subspaces of d/h dimensions, attends in each, concatenates and projects back.

Self-attention treats its input as a set: permuting the positions permutes the output.
Order enters only through position encodings:
    sinusoidal  PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))
    learned     a trained vector per position (GPT, BERT, ViT)
    rotary      rotate each pair (x_2i, x_2i+1) of q and k by the angle p theta_i,
                theta_i = 10000^(-2i/d), so that q_m . k_n depends on m - n only (Su et al. 2021)
"""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv). A boolean attn_mask is True where
    attention is allowed; a float mask is added to the scores (PyTorch's conventions).
    attn_mask and is_causal are exclusive, as PyTorch documents them: put the causal mask
    into attn_mask to combine the two. Returns the output, and with return_weights the
    attention weights too."""
    _exclusive(attn_mask, is_causal)
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # dividing by sqrt(d) keeps the softmax
    # out of saturation: q.k sums d products of unit-variance terms
    if is_causal:
        tq, tk = scores.shape[-2:]
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
    return (out, weights) if return_weights else out


def _exclusive(attn_mask: Tensor | None, is_causal: bool) -> None:
    """Refuse an explicit mask together with is_causal, which PyTorch documents as an error
    (its math kernel raises; its CPU flash kernel applies both without a word)."""
    if attn_mask is not None and is_causal:
        raise ValueError(
            "attn_mask and is_causal=True cannot be combined: pass is_causal=True alone, "
            "or fold the causal mask into attn_mask and pass is_causal=False"
        )


def _causal_mask(tq: int, tk: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The (tq, tk) additive causal mask: 0 where key position <= query position, else -inf
    (upper-left aligned, as is_causal is)."""
    allowed = torch.ones(tq, tk, dtype=torch.bool, device=device).tril()
    return torch.zeros(tq, tk, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with nn.MultiheadAttention's parameters
    (in_proj_weight (3E, E), in_proj_bias, out_proj), so its state dict loads unchanged."""

    def __init__(
        self, embed_dim: int, num_heads: int, bias: bool = True, kernel: str = "ours"
    ) -> None:
        """kernel="torch" computes the attention itself with F.scaled_dot_product_attention
        (proven equal in the tests; faster), and then returns no weights."""
        super().__init__()
        self.kernel = kernel
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _heads(self, x: Tensor) -> Tensor:  # (B, T, E) -> (B, h, T, E/h)
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, -1).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
        rope: RotaryEmbedding | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """key_padding_mask (B, Tk): True marks padding (nn.MultiheadAttention's convention).
        attn_mask (Tq, Tk): True where attention is *not* allowed, or a float mask to add;
        it cannot be combined with is_causal (ValueError), key_padding_mask can.
        Returns the output and the attention weights averaged over heads (None with
        kernel="torch", which computes no weights)."""
        _exclusive(attn_mask, is_causal)
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = (
            self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        )
        q = self._heads(nn.functional.linear(query, w_q, b_q))
        k = self._heads(nn.functional.linear(key, w_k, b_k))
        v = self._heads(nn.functional.linear(value, w_v, b_v))
        if rope is not None:
            q, k = rope(q), rope(k)
        mask = None  # additive float mask of shape broadcastable to (B, h, Tq, Tk)
        if attn_mask is not None:
            mask = (
                torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                    attn_mask, float("-inf")
                )
                if attn_mask.dtype == torch.bool
                else attn_mask.to(q.dtype)
            )
        if key_padding_mask is not None:
            pad = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device).masked_fill(
                key_padding_mask, float("-inf")
            )[:, None, None, :]
            mask = pad if mask is None else mask + pad
        if is_causal and mask is not None:  # padding and causal: one mask, since neither
            # kernel takes a mask with is_causal
            mask = mask + _causal_mask(q.shape[-2], k.shape[-2], q.dtype, q.device)
            is_causal = False
        if self.kernel == "torch":
            out = nn.functional.scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal)
            weights = None
        else:
            out, weights = scaled_dot_product_attention(
                q, k, v, mask, is_causal, return_weights=True
            )
        b, h, t, dh = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(b, t, h * dh))
        return out, None if weights is None else weights.mean(dim=1)


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """The (length, dim) table of sinusoidal position encodings."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe.float()


class RotaryEmbedding(nn.Module):
    """Rotary position embedding applied to (..., T, d) queries or keys, d even."""

    def __init__(self, dim: int, max_len: int = 4096, base: float = 10000.0) -> None:
        super().__init__()
        theta = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles = torch.arange(max_len, dtype=torch.float64)[:, None] * theta  # (T, d/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        t = x.shape[-2]
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        # (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos), pair by pair
        out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
        return out.flatten(-2)
