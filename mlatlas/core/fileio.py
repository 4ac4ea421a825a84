"""Files that survive a kill: atomic writes, append-only JSON lines, and a cross-process lock.

A reader must never see half a file. Every whole file the project writes (result.json,
config.json, checkpoints, downloads, figures) goes to a temporary file in the same folder,
is flushed to disk, and is renamed over the target: ``os.replace`` is atomic on POSIX and
Windows, so the target is either the old file or the new one. A kill, a full disk or an
exception in between leaves at most a hidden ``.*.tmp`` file, never a truncated target.

Logs are the exception: ``metrics.jsonl`` grows a line at a time, so a kill can tear its last
line; `read_jsonl` ignores a torn last line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

try:  # POSIX advisory locks; on Windows the lock degrades to an exclusive lock file
    import fcntl
except ImportError:  # pragma: no cover - not on this project's machines
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on a clean exit flush, fsync and rename it to
    `path`. On any error (or a kill) the target is untouched and the temporary file removed
    (a kill leaves a hidden ``.name.*.tmp`` that the next write ignores)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_save(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Atomic form of a library's save-to-path function: ``writer(tmp_path)`` writes a
    temporary file that is then renamed to `path` (for savefig, safetensors, torch.save)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    try:
        writer(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line (one write call, so a kill tears at most this line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; a torn (unterminated or unparsable) last line, which a
    kill mid-write leaves, is ignored. A bad line elsewhere is corruption and raises."""
    p = Path(path)
    if not p.exists():
        return []
    text = p.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete, last = lines[:-1], lines[-1]  # `last` is "" when the file ends with a newline
    rows = []
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(complete) - 1 and not last:
                break  # a torn final line that happens to end in a newline
            raise ValueError(f"{p}: line {i + 1} is not JSON (the file is corrupted)") from None
    return rows


def complete_jsonl_size(path: str | Path) -> int:
    """Bytes of `path` up to and including its last newline (drops a torn last line)."""
    p = Path(path)
    if not p.exists():
        return 0
    data = p.read_bytes()
    return data.rfind(b"\n") + 1


@contextlib.contextmanager
def file_lock(path: str | Path, timeout: float | None = None) -> Iterator[None]:
    """An exclusive lock between processes on `path` (created if missing). Blocks until the
    lock is free, or raises TimeoutError after `timeout` seconds. The kernel releases it when
    the holder dies, so a killed process never leaves a stale lock."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a+") as f:
        if fcntl is None:  # pragma: no cover
            yield
            return
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if timeout is not None and time.monotonic() - start > timeout:
                    raise TimeoutError(f"{p} is locked by another process") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
