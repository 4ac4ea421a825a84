"""The dataset registry: which files make a dataset, their sha256, where to get them.

Lookup order for a file ``<dataset>/<file>``:

1. each folder in ``MLATLAS_DATA`` (separated by ``os.pathsep``), as ``<folder>/<dataset>/<file>``;
2. the cache, ``$MLATLAS_CACHE`` or ``~/.cache/mlatlas``, as ``<cache>/<dataset>/<file>``;
3. a download from the file's source URLs into the cache (skipped when ``MLATLAS_OFFLINE=1``).

Every file is checked against its sha256 before use. A download goes to a temporary
file next to its destination, is verified, and only then renamed into place, so a failed
or corrupt download never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


class DataError(Exception):
    """Base class of data-layer errors."""


class DatasetMissingError(DataError, FileNotFoundError):
    """A dataset file is not on disk and could not be downloaded."""


class ChecksumError(DataError, ValueError):
    """A file's sha256 differs from the registry's."""


@dataclass(frozen=True)
class DataFile:
    name: str
    sha256: str
    size: int
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    files: tuple[DataFile, ...]
    source: str
    license: str
    citation: str = ""
    note: str = ""

    def file(self, name: str) -> DataFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"dataset {self.name} has no file {name!r}")

    def record(self) -> dict[str, Any]:
        """What a result.json says about the data it used."""
        return {
            "name": self.name,
            "title": self.title,
            "files": {f.name: f.sha256 for f in self.files},
            "source": self.source,
        }


REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    REGISTRY[info.name] = info
    return info


def get_dataset(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; registered: {', '.join(sorted(REGISTRY))}"
        ) from None


def data_dirs() -> list[Path]:
    raw = os.environ.get("MLATLAS_DATA", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def cache_dir() -> Path:
    return Path(os.environ.get("MLATLAS_CACHE", "~/.cache/mlatlas")).expanduser()


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, int, int], str] = {}


def _verified_index() -> Path:
    return cache_dir() / "verified.json"


def _checked_sha256(path: Path) -> str:
    """sha256 of `path`, remembered by (path, size, mtime) in memory and in the cache."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return _VERIFIED[key]
    index_file = _verified_index()
    index: dict[str, str] = {}
    if index_file.exists():
        try:
            index = json.loads(index_file.read_text())
        except (OSError, json.JSONDecodeError):
            index = {}
    skey = f"{key[0]}|{key[1]}|{key[2]}"
    digest = index.get(skey) or sha256_of(path)
    _VERIFIED[key] = digest
    if index.get(skey) != digest:
        index[skey] = digest
        try:
            index_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(index))
            tmp.replace(index_file)
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
    return digest


def _check(path: Path, spec: DataFile) -> Path:
    actual = _checked_sha256(path)
    if actual != spec.sha256:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {actual}"
        )
    return path


def download(url: str, dest: Path, sha256: str, size: int | None = None) -> Path:
    """Fetch `url` to `dest` atomically: temp file, sha256 check, rename.

    Raises ChecksumError (and leaves nothing behind) when the bytes are not the expected ones.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or size or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while block := resp.read(1 << 16):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        actual = h.hexdigest()
        if actual != sha256:
            raise ChecksumError(
                f"checksum mismatch for {dest.name} downloaded from {url}: "
                f"expected sha256 {sha256}, got {actual}"
            )
        tmp.replace(dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def locate(dataset: str, filename: str) -> Path:
    """Path of a verified copy of `dataset`/`filename`, downloading it if need be."""
    info = get_dataset(dataset)
    spec = info.file(filename)
    for folder in data_dirs():
        candidate = folder / dataset / filename
        if candidate.is_file():
            return _check(candidate, spec)
    cached = cache_dir() / dataset / filename
    if cached.is_file():
        return _check(cached, spec)
    failures = []
    if os.environ.get("MLATLAS_OFFLINE", "") in ("1", "true", "yes"):
        failures.append("downloads are off (MLATLAS_OFFLINE is set)")
    else:
        for url in spec.urls:
            try:
                return download(url, cached, spec.sha256, spec.size)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                failures.append(f"{url}: {exc}")
        if not spec.urls:
            failures.append("no verified download source is known for this file")
    where = [str(d / dataset / filename) for d in data_dirs()] + [str(cached)]
    raise DatasetMissingError(
        f"dataset '{dataset}' ({info.title}) needs file '{filename}' "
        f"(sha256 {spec.sha256[:16]}...). Put it at one of: {'; '.join(where)} "
        f"-- or set MLATLAS_DATA to a folder that holds '{dataset}/{filename}'. "
        f"Tried: {'; '.join(failures)}. {info.note}".strip()
    )


def is_available(dataset: str) -> bool:
    """True when every file of the dataset is on disk (in MLATLAS_DATA or the cache)."""
    info = get_dataset(dataset)
    for f in info.files:
        places = [d / dataset / f.name for d in data_dirs()] + [cache_dir() / dataset / f.name]
        if not any(p.is_file() for p in places):
            return False
    return True
