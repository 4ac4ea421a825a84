"""Unpacking a downloaded archive without trusting it.

An archive names its own paths, so a crafted one can write anywhere the process can:
``../../.bashrc``, ``/etc/cron.d/x``, or a symlink to ``/`` followed by a file "inside" it.
`safe_extract` reads the whole member list first and refuses the archive, before writing
anything, when one member is not a plain file or folder below the destination. It then
unpacks into a temporary folder next to the destination and renames that into place, so
the destination is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mlatlas.core.data.registry import DataError

_CHUNK = 1 << 20


def member_path(name: str, archive: str | Path = "archive") -> PurePosixPath:
    """`name` as a relative path that stays below the folder it is unpacked into, or a
    DataError naming the member. Backslashes and drive letters count as separators and roots,
    since the same archive may be unpacked on Windows."""
    parts = name.replace("\\", "/").split("/")
    if "\0" in name or name.startswith(("/", "\\")) or (parts and ":" in parts[0]):
        raise DataError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in parts:
        raise DataError(f"{archive}: refusing member {name!r}: '..' leaves the destination")
    clean = PurePosixPath(*[p for p in parts if p not in ("", ".")])
    if not clean.parts:
        raise DataError(f"{archive}: refusing member {name!r}: empty path")
    return clean


Plan = list[tuple[zipfile.ZipInfo | tarfile.TarInfo, PurePosixPath, bool]]


def _zip_members(z: zipfile.ZipFile, archive: Path) -> Plan:
    """(member, path, is_folder) of every member; refuses links and special files (the
    file type sits in the high 16 bits of external_attr for archives made on Unix)."""
    plan: Plan = []
    for info in z.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "symlink" if stat.S_ISLNK(mode) else "special file"
            raise DataError(f"{archive}: refusing member {info.filename!r}: {what}")
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        plan.append((info, member_path(info.filename, archive), is_dir))
    return plan


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return f"symlink to {m.linkname!r}"
    if m.islnk():
        return f"hardlink to {m.linkname!r}"
    if m.ischr() or m.isblk():
        return "device file"
    if m.isfifo():
        return "fifo"
    return "not a regular file or folder"


def _tar_members(t: tarfile.TarFile, archive: Path) -> Plan:
    """(member, path, is_folder) of every member; links, devices and fifos are refused
    outright, even links that point inside, since one link can redirect later members."""
    plan: Plan = []
    for m in t.getmembers():
        if not (m.isreg() or m.isdir()):
            raise DataError(f"{archive}: refusing member {m.name!r}: {_tar_kind(m)}")
        plan.append((m, member_path(m.name, archive), m.isdir()))
    return plan


def _plan(arc: zipfile.ZipFile | tarfile.TarFile, archive: Path) -> Plan:
    if isinstance(arc, zipfile.ZipFile):
        return _zip_members(arc, archive)
    return _tar_members(arc, archive)


def _source(arc: zipfile.ZipFile | tarfile.TarFile, member: Any) -> IO[bytes]:
    stream = arc.open(member) if isinstance(arc, zipfile.ZipFile) else arc.extractfile(member)
    assert stream is not None  # only regular files get here
    return stream


def _unpack(arc: zipfile.ZipFile | tarfile.TarFile, plan: Plan, root: Path) -> None:
    """Write the planned members below `root`, a fresh folder holding no links, so every
    path stays inside it."""
    for member, rel, is_dir in plan:
        target = root / rel
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with _source(arc, member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)


@contextlib.contextmanager
def _opened(archive: Path) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    """The archive opened by its content (zip, or tar with any of gz/bz2/xz)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            yield z
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as t:
            yield t
    else:
        raise DataError(f"{archive} is not a zip or tar archive")


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack `archive` (.zip, .tar, .tar.gz, .tar.bz2, .tar.xz) into the new folder `dest`.

    Refuses, with a DataError naming the member and before writing anything, archives with
    absolute paths, '..' components, symlinks, hardlinks, devices or fifos. Unpacks into a
    temporary folder next to `dest` and renames it into place, so `dest` is never partial.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DataError(f"{dest} already exists; delete it to unpack {archive.name} again")
    try:
        with _opened(archive) as arc:
            plan = _plan(arc, archive)  # refuses a bad archive before anything is written
            _unpack_atomically(arc, plan, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive} is corrupted or truncated ({exc}); delete it") from None
    return dest


def _unpack_atomically(arc: zipfile.ZipFile | tarfile.TarFile, plan: Plan, dest: Path) -> None:
    """Unpack into a temporary folder next to `dest`, then rename it to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        _unpack(arc, plan, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; give it a folder's usual mode
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
