"""Loaders that turn registry files into NumPy arrays, cached after the first decode.

Decoded arrays are kept in memory for the process and as ``.npz`` in the cache folder,
keyed by the source file's sha256, so a second process skips the decode too.

Zip datasets (Omniglot) are read in memory: member names only select members and are
never used as paths on disk. An archive that must be unpacked goes through
`mlatlas.core.data.archive.safe_extract`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mlatlas.core.data.registry import DataError, cache_dir, get_dataset, locate
from mlatlas.core.fileio import atomic_save

SPLITS_IDX = {"train": "train", "test": "t10k"}


def _decoded(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load `key` from the decode cache, or build it and store it there."""
    path = cache_dir() / "decoded" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # damaged: decode again
            path.unlink(missing_ok=True)
    arrays = build()
    with contextlib.suppress(OSError):  # read-only cache: decode again next time
        # a private temporary name per writer, so two processes never write one file
        atomic_save(path, lambda tmp: np.savez(tmp, **arrays))
    return arrays


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped).

    Layout: two zero bytes, type 0x08 (unsigned byte), ndim; ndim big-endian uint32 dims; data.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {tuple(dims)} but holds {data.size} bytes")
    return data.reshape(tuple(dims))


@lru_cache(maxsize=8)
def _idx_images(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in SPLITS_IDX:
        raise DataError(f"unknown split {split!r} for {dataset}; valid splits: train, test")
    prefix = SPLITS_IDX[split]
    info = get_dataset(dataset)
    img_name, lab_name = f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"
    key = f"{dataset}-{split}-{info.file(img_name).sha256[:12]}"

    def build() -> dict[str, np.ndarray]:
        x = read_idx(locate(dataset, img_name))
        y = read_idx(locate(dataset, lab_name)).astype(np.int64)
        if len(x) != len(y):
            raise DataError(f"{dataset} {split}: {len(x)} images but {len(y)} labels")
        return {"x": x, "y": y}

    arrays = _decoded(key, build)
    return arrays["x"], arrays["y"]


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST: images uint8 (N, 28, 28), labels int64 (N,). train: 60000, test: 10000."""
    return _idx_images("mnist", split)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST: images uint8 (N, 28, 28), labels int64 (N,). train: 60000, test: 10000."""
    return _idx_images("fashion-mnist", split)


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@lru_cache(maxsize=1)
def load_tinyshakespeare() -> str:
    """The 1,115,394-character Tiny Shakespeare text."""
    return locate("tinyshakespeare", "input.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=2)
def load_wikitext2(split: str = "valid") -> tuple[str, ...]:
    """WikiText-2 tokens of a split ("valid" or "test"): whitespace tokens plus ``<eos>``
    at the end of every line, the counting used by the published token totals."""
    if split not in ("valid", "test"):
        raise DataError(f"unknown split {split!r} for wikitext-2; valid splits: valid, test")
    text = locate("wikitext-2", f"{split}.txt").read_text(encoding="utf-8")
    tokens: list[str] = []
    for line in text.splitlines():
        tokens.extend(line.split())
        tokens.append("<eos>")
    return tuple(tokens)


def _png_to_array(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L")) < 128  # ink is black: True where drawn


@dataclass(frozen=True)
class Omniglot:
    images: np.ndarray  # bool (N, 105, 105), True = ink
    character: np.ndarray  # int64 (N,), index into `characters`
    alphabet: np.ndarray  # int64 (N,), index into `alphabets`
    drawer: np.ndarray  # int64 (N,), the drawer id from the file name
    characters: tuple[str, ...]  # "Alphabet/characterNN"
    alphabets: tuple[str, ...]


_OMNI_NAME = re.compile(r"^images_\w+/([^/]+)/(character\d+)/\d+_(\d+)\.png$")


@lru_cache(maxsize=4)
def load_omniglot(background: bool = True, max_characters: int | None = None) -> Omniglot:
    """Omniglot read straight from its zip (no unpacking to disk).

    background=True gives the 964 characters of 30 alphabets used for training, False the
    659 characters of 20 alphabets used for evaluation; 20 drawings per character.
    `max_characters` keeps only the first characters in sorted order (for quick looks).
    """
    name = "images_background.zip" if background else "images_evaluation.zip"
    path = locate("omniglot", name)
    with zipfile.ZipFile(path) as z:
        members = sorted(n for n in z.namelist() if n.endswith(".png"))
        parsed = [(n, _OMNI_NAME.match(n)) for n in members]
        bad = [n for n, m in parsed if m is None]
        if bad:
            raise DataError(f"{path}: unexpected member {bad[0]!r}")
        chars = sorted({f"{m.group(1)}/{m.group(2)}" for _, m in parsed if m})
        if max_characters is not None:
            chars = chars[:max_characters]
        keep = set(chars)
        parsed = [(n, m) for n, m in parsed if m and f"{m.group(1)}/{m.group(2)}" in keep]
        alphabets = sorted({c.split("/")[0] for c in chars})
        char_index = {c: i for i, c in enumerate(chars)}
        alpha_index = {a: i for i, a in enumerate(alphabets)}
        digest = get_dataset("omniglot").file(name).sha256[:12]
        key = f"omniglot-{name[:-4]}-{max_characters}-{digest}"

        def build() -> dict[str, np.ndarray]:
            images = np.stack([_png_to_array(z.read(n)) for n, _ in parsed])
            return {"images": images}

        images = _decoded(key, build)["images"]
    character = np.array([char_index[f"{m.group(1)}/{m.group(2)}"] for _, m in parsed])
    alphabet = np.array([alpha_index[m.group(1)] for _, m in parsed])
    drawer = np.array([int(m.group(3)) for _, m in parsed])
    return Omniglot(images, character, alphabet, drawer, tuple(chars), tuple(alphabets))


@dataclass(frozen=True)
class OneShotRun:
    """One of the 20 canonical 20-way one-shot runs (Lake et al. 2015)."""

    train: np.ndarray  # bool (20, 105, 105): one example of each class
    test: np.ndarray  # bool (20, 105, 105): the queries
    answer: np.ndarray  # int64 (20,): for test i, the index of its class in `train`


@lru_cache(maxsize=1)
def load_omniglot_runs() -> tuple[OneShotRun, ...]:
    path = locate("omniglot", "all_runs.zip")
    runs = []
    with zipfile.ZipFile(path) as z:
        for r in range(1, 21):
            pairs = z.read(f"run{r:02d}/class_labels.txt").decode().split("\n")
            pairs = [p.split() for p in pairs if p.strip()]
            train_names = sorted(z for _, z in pairs)
            order = {n: i for i, n in enumerate(train_names)}
            test_names = [t for t, _ in pairs]
            runs.append(
                OneShotRun(
                    train=np.stack([_png_to_array(z.read(n)) for n in train_names]),
                    test=np.stack([_png_to_array(z.read(n)) for n in test_names]),
                    answer=np.array([order[c] for _, c in pairs]),
                )
            )
    return tuple(runs)


ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
)
_ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)


@dataclass(frozen=True)
class Adult:
    numeric: np.ndarray  # float64 (N, 6), columns ADULT_NUMERIC
    categorical: np.ndarray  # int64 (N, 8), codes into `categories[column]`; "?" is a category
    categories: dict[str, tuple[str, ...]]
    y: np.ndarray  # int64 (N,), 1 for income >50K


def _read_adult_rows(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("|"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(_ADULT_COLUMNS):
            raise DataError(f"{path}: row with {len(fields)} fields: {line[:60]!r}")
        rows.append(fields)
    return rows


@lru_cache(maxsize=2)
def load_adult(split: str = "train") -> Adult:
    """UCI Adult: 32,561 train rows, 16,281 test rows. Category codes are shared by both
    splits (built from their union, sorted), so a model fit on train applies to test."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} for adult; valid splits: train, test")
    both = {
        "train": _read_adult_rows(locate("adult", "adult.data")),
        "test": _read_adult_rows(locate("adult", "adult.test")),
    }
    col = {c: i for i, c in enumerate(_ADULT_COLUMNS)}
    categories = {
        c: tuple(sorted({r[col[c]] for rows in both.values() for r in rows}))
        for c in ADULT_CATEGORICAL
    }
    rows = both[split]
    numeric = np.array([[float(r[col[c]]) for c in ADULT_NUMERIC] for r in rows])
    codes = {c: {v: i for i, v in enumerate(categories[c])} for c in ADULT_CATEGORICAL}
    categorical = np.array([[codes[c][r[col[c]]] for c in ADULT_CATEGORICAL] for r in rows])
    y = np.array([1 if r[col["income"]].rstrip(".") == ">50K" else 0 for r in rows])
    return Adult(numeric, categorical, categories, y)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: x float64 (1797, 64) in [0, 16], y int64 (1797,).

    Ships inside scikit-learn, so it needs no download: the default for anything that must
    run on a machine with no network and no MLATLAS_DATA.
    """
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return d.data.astype(np.float64), d.target.astype(np.int64)
