r"""Packing (PacGAN, Lin et al. 2018, "PacGAN: the power of two samples in generative
adversarial networks").

The discriminator judges m samples at once, all real or all fake, concatenated into one
input: for 2-D points a vector of 2m numbers, for images m images stacked along the channel
axis. Nothing else of the GAN changes; only D's input grows by a factor m.

Why it counters mode collapse: a generator that covers a share 1 - eps of the data's modes
fools a one-sample D almost as well as a perfect one, but a pack of m fakes lands entirely in
its covered region with probability 1, while m real samples all do so only with probability
(1 - eps)^m. Lin et al. make this precise with Blackwell's comparison of experiments: the
total variation between the packed distributions P^m and Q^m, what an optimal packed D
measures, grows with m faster for pairs with mode collapse than for pairs at the same
distance without it, so packing penalises collapse in particular. Small m (2 to 4) already
gives most of the gain in their experiments ("the power of two samples").
"""

from __future__ import annotations

from torch import Tensor


def pack(x: Tensor, m: int, batch_dims: int = 1) -> Tensor:
    """Concatenate each run of `m` consecutive examples along the first feature axis.

    (B, d) -> (B / m, m d): pack j is [x_{jm}, ..., x_{jm+m-1}];
    (B, C, H, W) -> (B / m, m C, H, W): the m images' channels, one after the other.
    The last of the first `batch_dims` axes is the one packed (R ensemble members lead)."""
    if m == 1:
        return x
    lead, b = x.shape[: batch_dims - 1], x.shape[batch_dims - 1]
    if b % m:
        raise ValueError(f"a batch of {b} does not split into packs of {m}")
    # row-major memory: the m examples of a pack are adjacent, so merging the batch axis
    # into the first feature axis lays their features end to end
    return x.reshape(*lead, b // m, m * x.shape[batch_dims], *x.shape[batch_dims + 1 :])
