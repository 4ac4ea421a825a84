"""The dataset registry: which files make a dataset, their sha256, where to get them.

Lookup order for a file ``<dataset>/<file>``:

1. each folder in ``MLATLAS_DATA`` (separated by ``os.pathsep``), as ``<folder>/<dataset>/<file>``;
2. the cache, ``$MLATLAS_CACHE`` or ``~/.cache/mlatlas``, as ``<cache>/<dataset>/<file>``;
3. a download from the file's source URLs into the cache (skipped when ``MLATLAS_OFFLINE=1``).

Every file is checked against its sha256 before use (hashes are remembered under the file's
size, timestamps and inode, so a file changed later is hashed again). A download goes to a
temporary file next to its destination, is verified, and only then renamed into place, so a
failed or corrupt download never leaves a partial file behind; a lock file next to it makes
processes that miss the same file at once download it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from mlatlas.core.fileio import atomic_open, atomic_write_json, file_lock


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


_VERIFIED: dict[str, str] = {}

# A file whose mtime or ctime is this close to the moment it was hashed is not remembered:
# timestamps advance in clock ticks (milliseconds, two seconds on FAT), so a second write in
# the same tick would leave size and timestamps unchanged and a remembered hash stale.
_RACY_NS = 2_000_000_000


def _verified_index() -> Path:
    return cache_dir() / "verified.json"


def _stat_key(path: Path) -> tuple[str, int]:
    """(index key, time of last change in ns). The key holds every stat field a rewrite,
    truncation or replacement changes; ctime cannot be set back by ``touch`` or ``cp -p``."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
    return key, max(st.st_mtime_ns, st.st_ctime_ns)


def _read_index() -> dict[str, str]:
    try:
        index = json.loads(_verified_index().read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _remember(index: dict[str, str], key: str, digest: str) -> None:
    """Store `digest` under `key` in the on-disk index, dropping older keys of the same path."""
    path_prefix = key.rsplit("|", 4)[0] + "|"
    index = {k: v for k, v in index.items() if not k.startswith(path_prefix)}
    index[key] = digest
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        atomic_write_json(_verified_index(), index, indent=None)


def _checked_sha256(path: Path) -> str:
    """sha256 of `path`, remembered in memory and in the cache's ``verified.json`` under the
    file's stat key, so a large file is hashed once per change, not once per process; a
    file changed after it was verified has a new key and is hashed again."""
    key, changed_ns = _stat_key(path)
    digest = _VERIFIED.get(key) or _read_index().get(key)
    if isinstance(digest, str):
        _VERIFIED[key] = digest
        return digest
    started_ns = time.time_ns()
    digest = sha256_of(path)
    if changed_ns < started_ns - _RACY_NS:
        _VERIFIED[key] = digest
        _remember(_read_index(), key, digest)
    return digest


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _remedy(path: Path, spec: DataFile) -> str:
    """What to do about a corrupted file, which depends on where it lies."""
    if _is_inside(path, cache_dir()):
        if spec.urls:
            return f"Delete {path}; the next run downloads it again."
        return (
            f"Delete {path} and put a verified copy there, or set MLATLAS_DATA to a folder "
            f"that holds a verified '{path.parent.name}/{path.name}'."
        )
    return (
        f"Replace {path} with a verified copy, or delete it (the cache or a download is used "
        "instead), or fix MLATLAS_DATA if it points at the wrong folder."
    )


def _check(path: Path, spec: DataFile) -> Path:
    """`path` itself when its sha256 is the registered one; else a ChecksumError that says
    which file, both hashes, and how to fix it."""
    actual = _checked_sha256(path)
    if actual == spec.sha256:
        return path
    size = path.stat().st_size
    sizes = "" if size == spec.size else f" ({size} bytes, expected {spec.size})"
    raise ChecksumError(
        f"{path} is corrupted or truncated{sizes}: expected sha256 {spec.sha256}, "
        f"got {actual}. {_remedy(path, spec)}"
    )


def _stream(url: str, out: IO[bytes], h: Any, size: int | None, label: str) -> None:
    """Copy `url` into `out` and `h` with a progress bar. A connection that closes before
    the announced length raises ConnectionError (http.client reports it as a plain end)."""
    with urllib.request.urlopen(url, timeout=60) as resp:
        announced = int(resp.headers.get("Content-Length") or 0) or None
        received = 0
        with tqdm(
            total=announced or size, unit="B", unit_scale=True, desc=label, leave=False
        ) as bar:
            while block := resp.read(1 << 16):
                out.write(block)
                h.update(block)
                received += len(block)
                bar.update(len(block))
    if announced is not None and received < announced:
        raise ConnectionError(f"connection closed after {received} of {announced} bytes")


def download(url: str, dest: Path, sha256: str, size: int | None = None) -> Path:
    """Fetch `url` to `dest` atomically: temporary file, sha256 check, rename.

    Anything short of the expected bytes (a dropped connection, an error, a kill, other
    content) leaves `dest` as it was and no temporary file; wrong bytes raise ChecksumError.
    """
    h = hashlib.sha256()
    with atomic_open(dest, "wb") as out:
        _stream(url, out, h, size, dest.name)
        actual = h.hexdigest()
        if actual != sha256:
            raise ChecksumError(
                f"{dest.name} downloaded from {url} is not the registered file: expected "
                f"sha256 {sha256}, got {actual}; nothing was saved. The source may have "
                f"changed or the transfer was corrupted: try again, or put a verified copy "
                f"at {dest} or in a folder listed in MLATLAS_DATA."
            )
    return dest


def _offline() -> bool:
    return os.environ.get("MLATLAS_OFFLINE", "") in ("1", "true", "yes")


def _missing(info: DatasetInfo, spec: DataFile, failures: list[str]) -> DatasetMissingError:
    where = [str(d / info.name / spec.name) for d in data_dirs()]
    where.append(str(cache_dir() / info.name / spec.name))
    return DatasetMissingError(
        f"dataset '{info.name}' ({info.title}) needs file '{spec.name}' "
        f"(sha256 {spec.sha256[:16]}...). Put it at one of: {'; '.join(where)} "
        f"-- or set MLATLAS_DATA to a folder that holds '{info.name}/{spec.name}'. "
        f"Tried: {'; '.join(failures)}. {info.note}".strip()
    )


def _fetch(info: DatasetInfo, spec: DataFile, dest: Path) -> Path:
    """Download `spec` to `dest` from the first source that serves the registered bytes."""
    failures: list[str] = []
    bad_bytes: ChecksumError | None = None
    for url in spec.urls:
        try:
            return download(url, dest, spec.sha256, spec.size)
        except ChecksumError as exc:
            bad_bytes = exc
            failures.append(f"{url}: wrong bytes")
        except (OSError, http.client.HTTPException, TimeoutError) as exc:
            failures.append(f"{url}: {str(exc) or repr(exc)}")
    if bad_bytes is not None:
        raise bad_bytes
    if not spec.urls:
        failures.append("no verified download source is known for this file")
    raise _missing(info, spec, failures)


def _fetch_into_cache(info: DatasetInfo, spec: DataFile, cached: Path) -> Path:
    """Download into the cache under a lock on ``.<file>.lock``, so that processes that miss
    the same file at once download it once; the others wait, then find it in the cache."""
    lock = cached.parent / f".{cached.name}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch(exist_ok=True)
    except OSError as exc:
        raise _missing(info, spec, [f"the cache is not writable ({exc})"]) from None
    with file_lock(lock):
        if cached.is_file():  # another process downloaded it while this one waited
            return _check(cached, spec)
        return _fetch(info, spec, cached)


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
    if _offline():
        raise _missing(info, spec, ["downloads are off (MLATLAS_OFFLINE is set)"])
    return _fetch_into_cache(info, spec, cached)


def is_available(dataset: str) -> bool:
    """True when every file of the dataset is on disk (in MLATLAS_DATA or the cache)."""
    info = get_dataset(dataset)
    for f in info.files:
        places = [d / dataset / f.name for d in data_dirs()] + [cache_dir() / dataset / f.name]
        if not any(p.is_file() for p in places):
            return False
    return True
