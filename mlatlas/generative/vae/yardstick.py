"""The generative topics' yardstick: an MNIST classifier trained once, and sample scores in its
penultimate features.

Inception-v3 FID (Heusel et al. 2017) needs weights that cannot be downloaded here, so samples
are scored in the 128-d penultimate features of a small CNN the project trains on the MNIST
training set (cached under ``$MLATLAS_CACHE/yardstick``, its test accuracy recorded beside
it). The scores are the Fréchet distance, improved precision and recall (Kynkäänniemi et al.
2019) and class coverage (`mlatlas.core.sample_quality`); they compare generators with one
another in this project, never with published FIDs. `floor` gives the same scores between
two disjoint halves of the real test images: the value a perfect generator would reach with
that many samples.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlatlas.core.data import load_mnist
from mlatlas.core.data.registry import cache_dir
from mlatlas.core.fileio import atomic_save, atomic_write_json
from mlatlas.core.sample_quality import class_coverage, frechet_distance_of, precision_recall
from mlatlas.core.shared import code_digest
from mlatlas.core.train import fit_classifier

# Training recipe, fixed: Adam, 1e-3, batch 128, 1,500 steps (3.2 epochs); seed 0.
RECIPE = {"steps": 1500, "batch": 128, "lr": 1e-3, "seed": 0}


class YardstickNet(nn.Module):
    """conv 3x3 (32) - pool - conv 3x3 (64) - pool - fc 128 (the features) - fc 10.

    Not topic 5's LeNet-5: in its 84-d F6 features digits under Gaussian noise (sigma 0.6) kept
    precision 0.905 against the real-data floor's 0.901, so precision could not see the noise;
    in these 128-d features it falls to 0.766 (floor 0.888), at n = 2,000."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, 128)
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of images (n, 1, 28, 28) in [0, 1]."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def as_images(x: np.ndarray | Tensor) -> Tensor:
    """uint8 (n, 28, 28) or float images, any of (n, 784), (n, 28, 28), (n, 1, 28, 28), as
    float32 (n, 1, 28, 28) in [0, 1]."""
    t = x if isinstance(x, Tensor) else torch.from_numpy(np.array(x))  # a copy: loaders share
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    return t.reshape(-1, 1, 28, 28)


@dataclass
class Yardstick:
    """The trained classifier, its MNIST test accuracy and where its weights are cached."""

    net: YardstickNet
    test_accuracy: float
    path: Path
    trained: bool  # True when this call trained it, False when it was loaded
    space: str = "yardstick features (128-d)"

    def probabilities(self, images: np.ndarray | Tensor) -> Tensor:
        """Class probabilities (n, 10) of images, float64."""
        return self.embed(images)[1]

    @torch.no_grad()
    def embed(self, images: np.ndarray | Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
        """Penultimate features (n, 128) and class probabilities (n, 10), in float64."""
        x = as_images(images)
        self.net.eval()
        feats = torch.cat([self.net.features(x[i : i + batch]) for i in range(0, len(x), batch)])
        return feats.double(), F.softmax(self.net.head(feats), dim=1).double()

    def scores(self, real: np.ndarray | Tensor, generated: np.ndarray | Tensor) -> dict:
        """Fréchet distance, precision, recall (k = 3) and class coverage of `generated`
        against `real` images, all in this classifier's features."""
        fr, _ = self.embed(real)
        fg, pg = self.embed(generated)
        precision, recall = precision_recall(fr, fg)
        return {
            "frechet_distance": frechet_distance_of(fr, fg),
            "precision": precision,
            "recall": recall,
            **class_coverage(pg, 10),
        }

    def floor(self, n: int, seed: int = 0) -> dict:
        """The scores between two disjoint random halves of n + n real test images."""
        x, _ = load_mnist("test")
        if 2 * n > len(x):
            raise ValueError(f"the floor needs 2n <= {len(x)} test images, got n = {n}")
        idx = np.random.default_rng(seed).permutation(len(x))
        return self.scores(x[idx[:n]], x[idx[n : 2 * n]])


def _train(net: YardstickNet) -> None:
    x, y = load_mnist("train")
    images, labels = as_images(x), torch.as_tensor(y)
    rng = np.random.default_rng(RECIPE["seed"])
    net.train()
    fit_classifier(net, images, labels, RECIPE["steps"], RECIPE["batch"], rng, lr=RECIPE["lr"])


@torch.no_grad()
def _accuracy(net: YardstickNet) -> float:
    x, y = load_mnist("test")
    net.eval()
    images = as_images(x)
    pred = torch.cat([net(images[i : i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    return float((pred == torch.as_tensor(y)).double().mean())


def load_yardstick(root: Path | None = None) -> Yardstick:
    """The classifier, trained on first use and cached under `root` (default
    ``$MLATLAS_CACHE/yardstick``), keyed by the recipe and the
    source of this module and of the training loop."""
    # the recipe is in the key too, so a changed recipe (a test's shorter one) never loads as it
    code = code_digest([__name__, "mlatlas.core.train"])
    key = hashlib.sha256((code + json.dumps(RECIPE)).encode()).hexdigest()[:16]
    folder = (root or cache_dir() / "yardstick") / f"mnist-{key}"
    weights, meta = folder / "weights.pt", folder / "meta.json"
    # init and training under the recipe's seed; the caller's generator state is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RECIPE["seed"])
        net = YardstickNet()
        if weights.exists() and meta.exists():
            net.load_state_dict(torch.load(weights, weights_only=True))
            return Yardstick(net, json.loads(meta.read_text())["test_accuracy"], weights, False)
        _train(net)
    acc = _accuracy(net)
    atomic_save(weights, lambda p: torch.save(net.state_dict(), p))
    atomic_write_json(meta, {"test_accuracy": acc, "recipe": RECIPE, "key": key})
    return Yardstick(net, acc, weights, True)


class PixelYardstick:
    """The same scores with raw pixels as the features, for image sets without a trained
    classifier (scikit-learn's 8x8 digits, which smoke runs use); the numbers are not
    comparable with the MNIST yardstick's. `real` holds the held-out images the floor splits;
    given training images and labels, a logistic regression (scikit-learn, fitted once here)
    gives the class probabilities for class coverage and confidence."""

    space = "pixels"

    def __init__(
        self, real: Tensor, train: Tensor | None = None, labels: Tensor | None = None
    ) -> None:
        self.real = torch.as_tensor(real).double().flatten(1)
        self.classifier = None
        if train is not None and labels is not None:
            from sklearn.linear_model import LogisticRegression

            x = torch.as_tensor(train).double().flatten(1).numpy()
            self.classifier = LogisticRegression(max_iter=2000).fit(x, np.asarray(labels))

    def probabilities(self, images: np.ndarray | Tensor) -> Tensor:
        """Class probabilities (n, 10) of images, float64."""
        if self.classifier is None:
            raise ValueError("this PixelYardstick was built without training images and labels")
        x = torch.as_tensor(images).double().flatten(1).numpy()
        return torch.from_numpy(self.classifier.predict_proba(x))

    def scores(self, real: np.ndarray | Tensor, generated: np.ndarray | Tensor) -> dict:
        fr = torch.as_tensor(real).double().flatten(1)
        fg = torch.as_tensor(generated).double().flatten(1)
        precision, recall = precision_recall(fr, fg)
        out = {"frechet_distance": frechet_distance_of(fr, fg), "precision": precision}
        out["recall"] = recall
        if self.classifier is not None:
            out.update(class_coverage(self.probabilities(fg), 10))
        return out

    def floor(self, n: int, seed: int = 0) -> dict:
        if 2 * n > len(self.real):
            raise ValueError(f"the floor needs 2n <= {len(self.real)} images, got n = {n}")
        idx = np.random.default_rng(seed).permutation(len(self.real))
        return self.scores(self.real[idx[:n]], self.real[idx[n : 2 * n]])


def yardstick_for(
    dataset: str, held_out: Tensor, train: Tensor | None = None, labels: Tensor | None = None
) -> Yardstick | PixelYardstick:
    """The MNIST yardstick for "mnist" (trained on first use, then cached); pixel-space scores
    against `held_out` for any other image set, with a logistic-regression classifier when
    training images and labels are given."""
    if dataset == "mnist":
        return load_yardstick()
    return PixelYardstick(held_out, train, labels)
