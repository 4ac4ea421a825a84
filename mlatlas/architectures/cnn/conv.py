"""2-D convolution and pooling from sliding windows (im2col) and one matrix product.

For input x of shape (N, C, H, W) and weight w of shape (O, C/g, kh, kw), a convolution is

    y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] x[n, c, s i + d u - p, s j + d v - p]

with stride s, dilation d and zero padding p. im2col gathers, for every output position,
the C kh kw input values it reads into one column, so the whole convolution becomes a single
matrix product (Chellapilla et al. 2006). Groups split the channels into g independent
convolutions (Krizhevsky et al. 2012). Pooling reads the same windows and reduces them with
max or mean instead of a weighted sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((size + 2p - d (k - 1) - 1) / s) + 1"""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(
    x: Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    pad_value: float = 0.0,
) -> Tensor:
    """Sliding windows of x as a view-based tensor of shape (N, C, Ho, Wo, kh, kw).

    Tensor.unfold(dim, size, step) makes windows of `size` consecutive elements; a dilated
    kernel reads every d-th element of a window of d (k - 1) + 1, so take that span and
    keep every d-th element.
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph), value=pad_value)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    win = x.unfold(2, span_h, sh).unfold(3, span_w, sw)  # (N, C, Ho, Wo, span_h, span_w)
    return win[..., ::dh, ::dw]


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """Convolution (cross-correlation, as in every deep learning library) via im2col."""
    n, c, _, _ = x.shape
    o, c_per_group, kh, kw = weight.shape
    if c != c_per_group * groups or o % groups:
        raise ValueError(
            f"channels do not split into {groups} groups: input {c}, weight {tuple(weight.shape)}"
        )
    cols = im2col(x, (kh, kw), _pair(stride), _pair(padding), _pair(dilation))
    _, _, ho, wo, _, _ = cols.shape
    # (N, g, C/g, Ho, Wo, kh, kw) x (g, O/g, C/g, kh, kw) -> (N, g, O/g, Ho, Wo)
    cols = cols.reshape(n, groups, c_per_group, ho, wo, kh, kw)
    w = weight.reshape(groups, o // groups, c_per_group, kh, kw)
    y = torch.einsum("ngchwuv,gocuv->ngohw", cols, w).reshape(n, o, ho, wo)
    if bias is not None:
        y = y + bias[None, :, None, None]
    return y


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """Maximum over each window; padding counts as -inf so it never wins."""
    k = _pair(kernel_size)
    s = _pair(stride) if stride is not None else k
    cols = im2col(x, k, s, _pair(padding), _pair(dilation), pad_value=float("-inf"))
    return cols.amax(dim=(-2, -1))


def avg_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Mean over each window, zero padding included in the count (PyTorch's default)."""
    k = _pair(kernel_size)
    s = _pair(stride) if stride is not None else k
    cols = im2col(x, k, s, _pair(padding), (1, 1))
    return cols.mean(dim=(-2, -1))


class Conv2d(torch.nn.Conv2d):
    """nn.Conv2d's parameters and init, computed with our conv2d (`ours=False`: torch's)."""

    def __init__(self, *args, ours: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ours = ours

    def forward(self, x: Tensor) -> Tensor:
        if not self.ours:
            return super().forward(x)
        return conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
