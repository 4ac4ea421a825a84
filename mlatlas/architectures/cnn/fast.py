r"""A small batch-normalised CNN and a short recipe that reaches 99% MNIST test accuracy in
about six seconds on a 2-core CPU.

The model follows the stage order of Jordan's CIFAR-10 speed runs (airbench, 2024):
convolution, then 2x2 max pooling, then batch normalisation (Ioffe & Szegedy 2015) and the
nonlinearity, so BN and ReLU run on a quarter of the pixels the convolution produced. Its
first stage is a stride-2 convolution instead (no pooling of the largest map), and three
stages take 28x28 to 3x3 (14, 7, 3); a linear layer reads the flattened 3x3 map.

The recipe: SGD with Nesterov momentum (Sutskever et al. 2013), a learning rate that rises
linearly for a short warm-up and then falls linearly to almost zero over a step count fixed
in advance (one-cycle with linear annealing, Smith & Topin 2019), weight decay on the
convolution and linear weights only, optional label smoothing (Szegedy et al. 2016),
$\mathcal{L} = -\sum_k \big((1-\varepsilon)\,[k=y] + \varepsilon/K\big)\log p_k$.
A known-length schedule needs no evaluation until its end: the accuracy is measured once,
after the last step.

Speed settings, measured on this project's 2-core CPU (AVX-512 bf16) rather than assumed:
channels-last memory format and bfloat16 autocast (master weights and the optimizer stay in
float32) each cut the step time, together to between a half and a quarter of plain float32
NCHW; the stride-2 stem cuts it by about 45% against pooling every stage.

How the defaults were chosen: on a validation split (10,000 of the 60,000 training images,
held out with a fixed generator by `benchmarks/mnist_time_to_99.py --split val`, training on
the other 50,000), never on the test set. Rule, fixed before the three-seed rounds: the
cheapest setting whose three validation seeds all reach 99.0%. Widths (16, 32, 64) at lr 0.4:
350 and 400 steps missed (min 98.89%, 98.93%), 470 steps reached it (99.10, 99.09, 99.00%);
lr 0.6, or label smoothing 0.1 at 400 steps, missed; wider nets (24-32 first channels, or
48 in the middle) reached similar accuracy at more time per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mlatlas.core.train import FitResult, batches_for_steps, fit
from mlatlas.foundations.optim.schedules import one_cycle


class FastCNN(nn.Module):
    """Stages of conv3x3 -> maxpool2 -> BN -> ReLU (airbench's order, Jordan 2024), widths
    `widths`, then flatten and one linear layer: 28x28 -> 14 -> 7 -> 3.

    stem="stride": the first stage is a stride-2 conv3x3 -> BN -> ReLU instead (28 -> 14 with
    a quarter of the convolution's outputs and no pooling of the largest map, about twice
    as fast per step on a 2-core CPU); stem="pool": every stage pools."""

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64),
        n_classes: int = 10,
        in_channels: int = 1,
        stem: str = "stride",
    ) -> None:
        super().__init__()
        if stem not in ("stride", "pool"):
            raise ValueError(f"stem must be 'stride' or 'pool', not {stem!r}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, w in enumerate(widths):
            # no conv bias: the BN shift that follows makes it redundant
            if i == 0 and stem == "stride":
                layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False)]
            else:
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.MaxPool2d(2)]
            layers += [nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        side = 28
        for _ in widths:
            side //= 2
        self.head = nn.Linear(c * side * side, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@dataclass(frozen=True)
class FastRecipe:
    """Everything that defines a training run of `train_fast` except the data and the seeds.

    steps: minibatches of `batch` examples (one epoch of 60,000 is 60000 // batch steps);
    lr: the peak learning rate, reached linearly from lr / 25 after `warmup` of the steps (a
    fraction), then decayed linearly to lr / 250,000 at the last step (topic 4's `one_cycle`
    with linear annealing).
    """

    widths: tuple[int, ...] = (16, 32, 64)
    stem: str = "stride"
    batch: int = 256
    steps: int = 470
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.1
    label_smoothing: float = 0.0
    channels_last: bool = True
    bf16: bool = True

    def describe(self) -> str:
        return (
            f"FastCNN widths {self.widths}, stem {self.stem}; "
            f"SGD Nesterov momentum {self.momentum}, "
            f"batch {self.batch}, {self.steps} steps, linear one-cycle lr peaking at {self.lr} "
            f"after {self.warmup:.0%} of them, weight decay {self.weight_decay}, "
            f"label smoothing {self.label_smoothing}, channels_last={self.channels_last}, "
            f"bf16={self.bf16}"
        )


def validation_split(
    x: torch.Tensor, y: torch.Tensor, n_val: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_val, y_val): `n_val` examples drawn by `rng` held out of the
    training set, for choosing a recipe without looking at the test set."""
    order = torch.from_numpy(rng.permutation(len(x)))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def prepare(model: nn.Module, recipe: FastRecipe) -> nn.Module:
    """The model in the recipe's memory format."""
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def autocast(recipe: FastRecipe, device_type: str) -> Any:
    """bfloat16 autocast on `device_type` ("cpu", "cuda", the data's ``x.device.type``) if the
    recipe asks for it, else nothing."""
    if recipe.bf16:
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: FastRecipe, batch: int = 2000
) -> float:
    """Top-1 accuracy in eval mode (BN running statistics), in the recipe's precision."""
    model.eval()
    right = 0
    with autocast(recipe, x.device.type):
        for i in range(0, len(x), batch):
            right += int((model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum())
    return right / len(x)


def train_fast(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: FastRecipe,
    rng: np.random.Generator,
    *,
    evaluate: Callable[[int], Any] | None = None,
    eval_every: int = 0,
    eval_last: bool = False,
    stop: Callable[[list[tuple[int, Any]]], bool] | None = None,
    ctx: Any = None,
    desc: str = "train",
) -> FitResult:
    """Train `model` (already in the recipe's memory format, see `prepare`) with the recipe
    through `core.train.fit`; batches are drawn by `rng`. Weight decay applies to tensors of
    two or more dimensions (convolution and linear weights), not to BN or biases."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=True,
    )
    smoothing = recipe.label_smoothing

    def loss_fn(m: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        with autocast(recipe, x.device.type):
            logits = m(x[idx])
        return nn.functional.cross_entropy(logits.float(), y[idx], label_smoothing=smoothing)

    return fit(
        model,
        opt,
        loss_fn,
        batches_for_steps(len(x), recipe.batch, recipe.steps, rng),
        recipe.steps,
        ctx=ctx,
        desc=desc,
        schedule=one_cycle(recipe.lr, recipe.steps, recipe.warmup, anneal_strategy="linear"),
        evaluate=evaluate,
        eval_every=eval_every,
        eval_last=eval_last,
        stop=stop,
    )
