r"""Image augmentations as batched torch ops, each image with its own random parameters.

Every geometric augmentation is an affine map $\theta = [A \mid t]$ in the normalised
coordinates of `F.affine_grid` (the image spans $[-1, 1]$, align_corners=False): the output
pixel at $u$ reads the input at $A u + t$. `warp` evaluates it by bilinear interpolation
written out by hand, in pixel units

$$ s = c + A_{\mathrm{px}}\,(p - c) + \tfrac{1}{2}(W, H)\odot t,
\qquad c = \tfrac{1}{2}(W-1, H-1),$$

with coordinates clamped to the image (border padding), so that the identity map reproduces
the input exactly. Composed maps are products of $3\times3$ homogeneous matrices, so a crop
followed by a rotation costs one interpolation, not two.

* random resized crop (Szegedy et al. 2015, the first augmentation of SimCLR, Chen et al. 2020):
  a box of area fraction $s \sim U(\mathrm{scale})$ and aspect ratio $r$ (log-uniform), placed
  uniformly inside the image and stretched back to full size;
* random affine: rotation, scale, shear and translation;
* Gaussian noise $x + \sigma\varepsilon$, $\varepsilon \sim N(0, I)$;
* cutout (DeVries & Taylor 2017): a square of side $k$ pixels at a uniform centre set to the
  image's background value.

Each takes a `torch.Generator`; every parameter at its "zero strength" (scale (1, 1), no
rotation, $\sigma = 0$, $k = 0$) makes the augmentation return its input unchanged, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def identity_theta(n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(n, 2, 3) identity maps."""
    return torch.eye(2, 3, dtype=dtype).expand(n, 2, 3).clone()


def compose(outer: Tensor, inner: Tensor) -> Tensor:
    """The map `inner` then `outer` in input-reading form: u -> outer(inner(u)), as (n, 2, 3).

    A view reads the input at outer(inner(u)): `inner` is the last augmentation applied to the
    image (it acts on the output grid first)."""
    a = outer[:, :, :2] @ inner[:, :, :2]
    t = outer[:, :, :2] @ inner[:, :, 2:] + outer[:, :, 2:]
    return torch.cat([a, t], dim=2)


def warp(x: Tensor, theta: Tensor) -> Tensor:
    """Bilinear resampling of x (B, C, H, W) at the maps theta (B, 2, 3); equals
    ``F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), "bilinear",
    "border", align_corners=False)``, and is exact for the identity map."""
    b, c, h, w = x.shape
    theta = theta.to(x.dtype)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij"
    )
    cx, cy = (w - 1) / 2, (h - 1) / 2
    px, py = (xs - cx).reshape(1, -1), (ys - cy).reshape(1, -1)  # centred output pixels
    a = theta[:, :, :2]
    # A acts on normalised coordinates (u = p / (W/2)); in pixel units the off-diagonal terms
    # pick up the aspect ratio, and t is scaled by the half-size.
    sx = cx + a[:, 0, :1] * px + a[:, 0, 1:2] * (w / h) * py + (w / 2) * theta[:, 0, 2:]
    sy = cy + a[:, 1, :1] * (h / w) * px + a[:, 1, 1:2] * py + (h / 2) * theta[:, 1, 2:]
    sx, sy = sx.clamp(0, w - 1), sy.clamp(0, h - 1)  # border padding: clip the coordinates
    x0, y0 = sx.detach().floor(), sy.detach().floor()
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    flat = x.reshape(b, c, h * w)

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        return flat.gather(2, (yy * w + xx).unsqueeze(1).expand(b, c, -1))

    fx, fy = fx.unsqueeze(1), fy.unsqueeze(1)
    top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
    bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
    return (top * (1 - fy) + bottom * fy).reshape(b, c, h, w)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def crop_theta(
    n: int,
    g: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """Random resized crops as maps: a box of area fraction s and aspect ratio r (width /
    height), clipped to the image, at a uniform position inside it."""
    s = _uniform(n, *scale, g)
    r = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), g))
    bw, bh = torch.sqrt(s * r).clamp(max=1.0), torch.sqrt(s / r).clamp(max=1.0)
    tx = (1 - bw) * (2 * torch.rand(n, generator=g) - 1)  # the box stays inside [-1, 1]
    ty = (1 - bh) * (2 * torch.rand(n, generator=g) - 1)
    z = torch.zeros(n)
    return torch.stack([torch.stack([bw, z, tx], 1), torch.stack([z, bh, ty], 1)], 1)


def affine_theta(
    n: int,
    g: torch.Generator,
    degrees: float = 15.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    shear: float = 10.0,
) -> Tensor:
    """Random affine maps: rotation in ±degrees, shear in ±shear degrees, zoom in `scale`,
    shift by up to `translate` of the image size."""
    rot = torch.deg2rad(_uniform(n, -degrees, degrees, g))
    sh = torch.tan(torch.deg2rad(_uniform(n, -shear, shear, g)))
    zoom = _uniform(n, *scale, g)
    tx, ty = (2 * translate * (2 * torch.rand(n, generator=g) - 1) for _ in range(2))
    c, s = torch.cos(rot), torch.sin(rot)
    # rotation @ shear, divided by the zoom: reading the input at A u shrinks it by 1/zoom
    a11, a12 = c / zoom, (c * sh - s) / zoom
    a21, a22 = s / zoom, (s * sh + c) / zoom
    return torch.stack([torch.stack([a11, a12, tx], 1), torch.stack([a21, a22, ty], 1)], 1)


def gaussian_noise(x: Tensor, g: torch.Generator, sigma: float) -> Tensor:
    """x + sigma * N(0, I)."""
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


def cutout(x: Tensor, g: torch.Generator, size: int, fill: Tensor | None = None) -> Tensor:
    """Set a size x size square at a uniform centre (it may hang over the edge) to `fill`
    (default: each image's minimum, the background of a digit)."""
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=g)
    cx = torch.randint(0, w, (b,), generator=g)
    top, left = cy - size // 2, cx - size // 2
    rows = torch.arange(h)[None, :] - top[:, None]  # (B, H): row index inside the square
    cols = torch.arange(w)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None]
    if fill is None:
        fill = x.detach().amin(dim=(1, 2, 3))
    return torch.where(inside[:, None], fill.reshape(-1, 1, 1, 1).to(x.dtype), x)


AUGMENTATIONS = ("crop", "affine", "noise", "cutout")


@dataclass(frozen=True)
class Augment:
    """A SimCLR-style view: crop, then affine (one warp), then noise, then cutout. `drop`
    leaves out the named augmentations (the ablation of Chen et al. 2020, section 3)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    degrees: float = 15.0
    translate: float = 0.1
    zoom: tuple[float, float] = (0.9, 1.1)
    shear: float = 10.0
    sigma: float = 0.3
    cutout: int = 10
    drop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.drop) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {AUGMENTATIONS}")

    def __call__(self, x: Tensor, g: torch.Generator) -> Tensor:
        n = len(x)
        background = x.detach().amin(dim=(1, 2, 3))  # before noise: the digit's blank paper
        theta = identity_theta(n)
        if "crop" not in self.drop:
            theta = crop_theta(n, g, self.crop_scale, self.crop_ratio)
        if "affine" not in self.drop:
            turn = affine_theta(n, g, self.degrees, self.translate, self.zoom, self.shear)
            theta = compose(theta, turn)
        if {"crop", "affine"} - set(self.drop):
            x = warp(x, theta)
        if "noise" not in self.drop:
            x = gaussian_noise(x, g, self.sigma)
        if "cutout" not in self.drop:
            x = cutout(x, g, self.cutout, background)
        return x
