"""Data that survives: downloads that fail leave nothing, corrupted files are named with both
hashes and a remedy (also when corrupted after they were verified), archives cannot write
outside their folder, and two processes missing one file download it once."""

from __future__ import annotations

import hashlib
import http.server
import io
import multiprocessing
import os
import shutil
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlatlas.core.data import (
    ChecksumError,
    DataError,
    DataFile,
    DatasetInfo,
    DatasetMissingError,
    download,
    locate,
    register,
    safe_extract,
)
from mlatlas.core.data import registry as reg

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "datasets" / "mnist"

PAYLOAD = bytes(range(256)) * 256  # 64 KiB
GOOD = hashlib.sha256(PAYLOAD).hexdigest()
CHUNKS = 16
SLOW_CHUNK_S = 0.03


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good: the payload; /wrong: other bytes; /drop: half the announced bytes, then the
    connection closes; /slow: the payload in chunks with pauses. Requests are counted."""

    counts: dict[str, int]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.counts[self.path] = self.counts.get(self.path, 0) + 1
        body = b"not the payload" * 10 if self.path == "/wrong" else PAYLOAD
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/drop":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        step = len(body) // CHUNKS
        for i in range(0, len(body), step):
            self.wfile.write(body[i : i + step])
            self.wfile.flush()
            if self.path == "/slow":
                time.sleep(SLOW_CHUNK_S)


def _make_server() -> tuple[http.server.ThreadingHTTPServer, dict[str, int]]:
    """A server bound to a free port on 127.0.0.1 (not yet serving) and its request counts."""
    counts: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"counts": counts})
    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler), counts


def _serve(httpd: http.server.ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return thread


def _url(httpd: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    """(base URL, request counts) of a threaded server on 127.0.0.1."""
    httpd, counts = _make_server()
    _serve(httpd)
    yield _url(httpd), counts
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache, an empty MLATLAS_DATA, downloads on."""
    folder = tmp_path / "cache"
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("MLATLAS_CACHE", str(folder))
    monkeypatch.setenv("MLATLAS_DATA", str(empty))
    monkeypatch.delenv("MLATLAS_OFFLINE", raising=False)
    return folder


def _register(name: str, urls: tuple[str, ...] = (), sha: str = GOOD) -> DataFile:
    spec = DataFile("payload.bin", sha, len(PAYLOAD), urls)
    register(DatasetInfo(name, "test set", (spec,), "local", "none"))
    return spec


def _leftovers(folder: Path) -> list[str]:
    """Everything in `folder` but the (empty, harmless) lock files."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


# 1. downloads ------------------------------------------------------------------------------


def test_wrong_bytes_from_server_leave_nothing(server, cache):
    url, _ = server
    _register("s-wrong", (f"{url}/wrong",))
    with pytest.raises(ChecksumError) as err:
        locate("s-wrong", "payload.bin")
    msg = str(err.value)
    assert GOOD in msg and "payload.bin" in msg and "nothing was saved" in msg
    assert _leftovers(cache / "s-wrong") == []


def test_wrong_bytes_fall_through_to_a_good_mirror(server, cache):
    url, counts = server
    _register("s-mirror", (f"{url}/wrong", f"{url}/good"))
    assert locate("s-mirror", "payload.bin").read_bytes() == PAYLOAD
    assert counts == {"/wrong": 1, "/good": 1}
    assert _leftovers(cache / "s-mirror") == ["payload.bin"]


def test_connection_dropped_mid_stream_leaves_nothing(server, cache):
    url, _ = server
    _register("s-drop", (f"{url}/drop",))
    with pytest.raises(DatasetMissingError, match="connection closed after 32768 of 65536 bytes"):
        locate("s-drop", "payload.bin")
    assert _leftovers(cache / "s-drop") == []


def test_file_url_with_wrong_bytes_leaves_nothing(tmp_path):
    source = tmp_path / "served.bin"
    source.write_bytes(PAYLOAD[:-1] + b"!")
    dest = tmp_path / "out" / "payload.bin"
    with pytest.raises(ChecksumError, match=GOOD):
        download(source.as_uri(), dest, GOOD, len(PAYLOAD))
    assert _leftovers(dest.parent) == []
    download(source.as_uri(), dest, hashlib.sha256(source.read_bytes()).hexdigest())
    assert _leftovers(dest.parent) == ["payload.bin"]


def test_interrupt_mid_download_leaves_nothing(server, cache, monkeypatch):
    """Ctrl-C after the first block: the exception propagates, no partial file stays."""

    class Interrupting:
        def __init__(self, **kwargs: object) -> None:
            pass

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(reg, "tqdm", Interrupting)
    url, _ = server
    _register("s-interrupt", (f"{url}/good",))
    with pytest.raises(KeyboardInterrupt):
        locate("s-interrupt", "payload.bin")
    assert _leftovers(cache / "s-interrupt") == []


# 1. corrupted files on disk ----------------------------------------------------------------


def _flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_cache_file_says_delete_and_redownload(cache):
    _register("s-cache", ("http://127.0.0.1:9/never",))
    path = cache / "s-cache" / "payload.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[:1000])  # truncated
    with pytest.raises(ChecksumError) as err:
        locate("s-cache", "payload.bin")
    msg = str(err.value)
    actual = hashlib.sha256(PAYLOAD[:1000]).hexdigest()
    assert str(path) in msg and GOOD in msg and actual in msg
    assert f"1000 bytes, expected {len(PAYLOAD)}" in msg
    assert f"Delete {path}" in msg and "downloads it again" in msg


@pytest.fixture
def mnist_copy(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of a small registered file in a temporary MLATLAS_DATA."""
    original = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not original.is_file():
        pytest.skip(f"{original} is not on this machine")
    copy = tmp_path / "data" / "mnist" / original.name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(original, copy)
    monkeypatch.setenv("MLATLAS_DATA", str(tmp_path / "data"))
    return copy


def test_corrupted_copy_in_data_dir_names_file_hashes_and_remedy(mnist_copy):
    assert locate("mnist", mnist_copy.name) == mnist_copy
    expected = reg.get_dataset("mnist").file(mnist_copy.name).sha256
    _flip_byte(mnist_copy)
    with pytest.raises(ChecksumError) as err:
        locate("mnist", mnist_copy.name)
    msg = str(err.value)
    assert str(mnist_copy) in msg and expected in msg
    assert hashlib.sha256(mnist_copy.read_bytes()).hexdigest() in msg
    assert "MLATLAS_DATA" in msg and "Replace" in msg and "delete it" in msg


def test_truncated_copy_in_data_dir_is_refused(mnist_copy):
    assert locate("mnist", mnist_copy.name) == mnist_copy
    mnist_copy.write_bytes(mnist_copy.read_bytes()[:-10])
    with pytest.raises(ChecksumError, match="4532 bytes, expected 4542"):
        locate("mnist", mnist_copy.name)


def _coarse_stat_key(path: Path) -> tuple[str, int]:
    """The registry's stat key on a filesystem whose timestamps have 1 s resolution."""
    st = path.stat()
    mtime, ctime = (t // 10**9 * 10**9 for t in (st.st_mtime_ns, st.st_ctime_ns))
    return f"{path.resolve()}|{st.st_size}|{mtime}|{ctime}|{st.st_ino}", max(mtime, ctime)


def test_rewrite_within_one_timestamp_tick_is_detected(tmp_path, cache, monkeypatch):
    """With coarse timestamps, a same-size rewrite right after verification keeps every stat
    field; the hash of a file that new was not remembered, so the rewrite is still caught."""
    monkeypatch.setattr(reg, "_stat_key", _coarse_stat_key)
    monkeypatch.setattr(reg, "_VERIFIED", {})
    _register("s-racy")
    path = tmp_path / "data" / "s-racy" / "payload.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    monkeypatch.setenv("MLATLAS_DATA", str(tmp_path / "data"))
    assert locate("s-racy", "payload.bin") == path
    _flip_byte(path)
    with pytest.raises(ChecksumError, match=GOOD):
        locate("s-racy", "payload.bin")


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = reg.sha256_of

    def counting(path: Path, chunk: int = 1 << 20) -> str:
        calls.append(path)
        return real(path, chunk)

    monkeypatch.setattr(reg, "sha256_of", counting)
    return calls


def test_rewrite_that_restores_size_and_mtime_is_detected(tmp_path, cache, monkeypatch):
    """A verified hash is remembered (in memory and in verified.json) and reused; a later
    rewrite that keeps the size and sets the mtime back still changes the ctime, so the
    file is hashed again and refused, also by a process with only the on-disk index."""
    monkeypatch.setattr(reg, "_RACY_NS", 0)
    monkeypatch.setattr(reg, "_VERIFIED", {})
    calls = _count_hashes(monkeypatch)
    _register("s-index")
    path = tmp_path / "data" / "s-index" / "payload.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    monkeypatch.setenv("MLATLAS_DATA", str(tmp_path / "data"))
    time.sleep(0.05)  # later writes fall in a later clock tick
    assert locate("s-index", "payload.bin") == path
    monkeypatch.setattr(reg, "_VERIFIED", {})  # a new process: only verified.json
    assert locate("s-index", "payload.bin") == path
    assert len(calls) == 1  # hashed once, then remembered

    before = path.stat()
    time.sleep(0.05)
    _flip_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ChecksumError, match=GOOD):
        locate("s-index", "payload.bin")
    monkeypatch.setattr(reg, "_VERIFIED", {})
    with pytest.raises(ChecksumError, match=GOOD):
        locate("s-index", "payload.bin")


# 3. two processes, one download ------------------------------------------------------------


def _locate_in_child(env: dict[str, str], name: str, url: str, barrier: object) -> None:
    """Runs in a child process: register the test set, wait for the sibling, locate."""
    os.environ.update(env)
    _register(name, (url,))
    barrier.wait(timeout=30)  # type: ignore[attr-defined]
    assert locate(name, "payload.bin").read_bytes() == PAYLOAD


def test_two_processes_download_a_missing_file_once(cache):
    """Both children call locate at once (a barrier); the server is slow (about 0.5 s), so
    without the lock both would download. The children are forked before the server thread
    starts (fork with running threads is unsafe), and spawned where fork does not exist."""
    httpd, counts = _make_server()
    env = {k: os.environ[k] for k in ("MLATLAS_CACHE", "MLATLAS_DATA")}
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(3)
    args = (env, "s-twice", f"{_url(httpd)}/slow", barrier)
    procs = [ctx.Process(target=_locate_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    _serve(httpd)
    try:
        barrier.wait(timeout=30)
        for p in procs:
            p.join(timeout=30)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert [p.exitcode for p in procs] == [0, 0]
    assert counts == {"/slow": 1}
    path = cache / "s-twice" / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(path.parent) == ["payload.bin"]


# 2. archives -------------------------------------------------------------------------------


def _zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as z:
            for info, data in members:
                z.writestr(info, data)

    return build


def _zip_symlink(name: str) -> zipfile.ZipInfo:
    """A zip member whose Unix mode says symlink (its data is the link target)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w"):
    def build(path: Path) -> None:
        with tarfile.open(path, mode) as t:
            for m in members:
                if isinstance(m, tarfile.TarInfo):
                    t.addfile(m)
                else:
                    info = tarfile.TarInfo(m[0])
                    info.size = len(m[1])
                    t.addfile(info, io.BytesIO(m[1]))

    return build


def _tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _crafted(tmp: Path) -> dict[str, tuple[str, Callable[[Path], None], str]]:
    """name -> (archive file name, builder, text the refusal must contain)."""
    outside = str(tmp / "abs-evil")
    return {
        "zip-dotdot": ("a.zip", _zip([("../evil", b"x")]), "'../evil'"),
        "zip-nested-dotdot": ("a.zip", _zip([("ok/../../evil", b"x")]), "'ok/../../evil'"),
        "zip-backslash-dotdot": ("a.zip", _zip([("..\\evil", b"x")]), "'..\\\\evil'"),
        "zip-absolute": ("a.zip", _zip([(outside, b"x")]), "absolute path"),
        "zip-drive-letter": ("a.zip", _zip([("C:/evil", b"x")]), "absolute path"),
        "zip-symlink": (
            "a.zip",
            _zip([(_zip_symlink("link"), b"/etc")]),
            "'link': symlink",
        ),
        "tar-dotdot": ("a.tar", _tar([("../x", b"x")]), "'../x'"),
        "tar-absolute": ("a.tar", _tar([(outside, b"x")]), "absolute path"),
        "tar-symlink-out": (
            "a.tar",
            _tar([_tar_entry("link", tarfile.SYMTYPE, "../../outside"), ("link/x", b"x")]),
            "'link': symlink to '../../outside'",
        ),
        "tar-hardlink-out": (
            "a.tar",
            _tar([_tar_entry("hard", tarfile.LNKTYPE, "../../outside")]),
            "'hard': hardlink to '../../outside'",
        ),
        "tar-device": ("a.tar", _tar([_tar_entry("dev", tarfile.CHRTYPE)]), "device file"),
        "tar-fifo": ("a.tar", _tar([_tar_entry("pipe", tarfile.FIFOTYPE)]), "fifo"),
        "tar.gz-dotdot": ("a.tar.gz", _tar([("ok", b"1"), ("../x", b"x")], "w:gz"), "'../x'"),
        "tar.xz-symlink": (
            "a.tar.xz",
            _tar([_tar_entry("l", tarfile.SYMTYPE, "/etc/passwd")], "w:xz"),
            "symlink",
        ),
    }


CRAFTED = sorted(_crafted(Path("/x")))


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_archive_is_refused_before_writing(tmp_path, case):
    filename, build, reason = _crafted(tmp_path)[case]
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    archive = work / filename
    build(archive)
    before = _tree(tmp_path)
    dest = work / "out"
    with pytest.raises(DataError, match="refusing member") as err:
        safe_extract(archive, dest)
    assert reason in str(err.value) and str(archive) in str(err.value)
    assert not dest.exists()
    assert _tree(tmp_path) == before  # nothing written anywhere, no temporary folder


def test_benign_archives_extract_completely(tmp_path):
    files = {"top.txt": b"top", "sub/dir/deep.bin": bytes(range(256)), "./dot/x": b"x"}
    expected = {"top.txt": b"top", "sub/dir/deep.bin": bytes(range(256)), "dot/x": b"x"}
    builders = {
        "b.zip": _zip([*files.items(), ("emptydir/", b"")]),
        "b.tar": _tar(list(files.items())),
        "b.tar.gz": _tar(list(files.items()), "w:gz"),
        "b.tar.bz2": _tar(list(files.items()), "w:bz2"),
        "b.tar.xz": _tar(list(files.items()), "w:xz"),
    }
    for name, build in builders.items():
        build(tmp_path / name)
        dest = tmp_path / f"out-{name}"
        assert safe_extract(tmp_path / name, dest) == dest
        got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        assert got == expected, name
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_extract_refuses_existing_dest_and_damaged_archives(tmp_path):
    _zip([("a", b"1")])(tmp_path / "ok.zip")
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists"):
        safe_extract(tmp_path / "ok.zip", tmp_path / "taken")
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b" + b"junk" * 100)
    with pytest.raises(DataError, match=r"junk\.tar\.gz"):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "out")
    _tar([("big", os.urandom(100_000))], "w:gz")(tmp_path / "cut.tar.gz")
    whole = (tmp_path / "cut.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.tar\.gz"):
        safe_extract(tmp_path / "cut.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
