"""The data layer: lookup order, verified atomic downloads from a local server, clear errors,
and the loaders on the real staged datasets."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
from conftest import require_data

from mlatlas.core import data
from mlatlas.core.data import (
    ChecksumError,
    DataFile,
    DatasetInfo,
    DatasetMissingError,
    locate,
    register,
)

PAYLOAD = b"mlatlas test payload\n" * 100
GOOD = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    """A file server on 127.0.0.1 over a temporary folder holding `payload.bin`."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "payload.bin").write_bytes(PAYLOAD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MLATLAS_CACHE", str(cache))
    monkeypatch.delenv("MLATLAS_OFFLINE", raising=False)
    monkeypatch.setenv("MLATLAS_DATA", "")
    return cache


def _register(name: str, sha: str, urls: tuple[str, ...]) -> None:
    register(
        DatasetInfo(
            name, "test set", (DataFile("payload.bin", sha, len(PAYLOAD), urls),), "local", "none"
        )
    )


def test_download_good_checksum(server, fresh_cache):
    _register("t-good", GOOD, (f"{server}/payload.bin",))
    path = locate("t-good", "payload.bin")
    assert path == fresh_cache / "t-good" / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    left = [p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")]
    assert left == ["payload.bin"]  # no temp file left (the empty lock file may stay)
    assert locate("t-good", "payload.bin") == path  # second call: from the cache


def test_download_bad_checksum_leaves_nothing(server, fresh_cache):
    bad = "0" * 64
    _register("t-bad", bad, (f"{server}/payload.bin",))
    with pytest.raises(ChecksumError) as err:
        locate("t-bad", "payload.bin")
    msg = str(err.value)
    assert "payload.bin" in msg and bad in msg and GOOD in msg
    folder = fresh_cache / "t-bad"
    assert not folder.exists() or [p for p in folder.iterdir() if p.suffix != ".lock"] == []


def test_download_404_then_clear_missing_error(server, fresh_cache):
    _register("t-404", GOOD, (f"{server}/nope.bin",))
    with pytest.raises(DatasetMissingError) as err:
        locate("t-404", "payload.bin")
    msg = str(err.value)
    assert "'t-404'" in msg and "'payload.bin'" in msg and "404" in msg and "MLATLAS_DATA" in msg
    assert str(fresh_cache / "t-404" / "payload.bin") in msg


def test_404_falls_through_to_a_working_mirror(server, fresh_cache):
    _register("t-mirror", GOOD, (f"{server}/nope.bin", f"{server}/payload.bin"))
    assert locate("t-mirror", "payload.bin").read_bytes() == PAYLOAD


def test_offline_and_missing(fresh_cache, monkeypatch):
    monkeypatch.setenv("MLATLAS_OFFLINE", "1")
    _register("t-offline", GOOD, ("http://127.0.0.1:9/never",))
    with pytest.raises(DatasetMissingError, match="MLATLAS_OFFLINE"):
        locate("t-offline", "payload.bin")


def test_lookup_order_data_dirs_before_cache(tmp_path, fresh_cache, monkeypatch):
    _register("t-order", GOOD, ())
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "t-order").mkdir(parents=True)
    (b / "t-order" / "payload.bin").write_bytes(PAYLOAD)
    (fresh_cache / "t-order").mkdir(parents=True)
    (fresh_cache / "t-order" / "payload.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("MLATLAS_DATA", f"{a}:{b}")
    assert locate("t-order", "payload.bin") == b / "t-order" / "payload.bin"
    monkeypatch.setenv("MLATLAS_DATA", str(a))
    assert locate("t-order", "payload.bin") == fresh_cache / "t-order" / "payload.bin"


def test_corrupt_file_in_data_dir_is_refused(tmp_path, fresh_cache, monkeypatch):
    _register("t-corrupt", GOOD, ())
    (tmp_path / "d" / "t-corrupt").mkdir(parents=True)
    (tmp_path / "d" / "t-corrupt" / "payload.bin").write_bytes(PAYLOAD + b"x")
    monkeypatch.setenv("MLATLAS_DATA", str(tmp_path / "d"))
    with pytest.raises(ChecksumError, match="expected sha256"):
        locate("t-corrupt", "payload.bin")


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="registered: adult"):
        locate("nope", "x")


# real datasets -----------------------------------------------------------------------


def test_mnist():
    require_data("mnist")
    x, y = data.load_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and y.shape == (60000,)
    assert abs(x.mean() - 33.318) < 1e-3
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    xt, yt = data.load_mnist("test")
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    with pytest.raises(data.DataError, match="valid splits"):
        data.load_mnist("val")


def test_fashion_mnist():
    require_data("fashion-mnist")
    x, y = data.load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and abs(x.mean() - 72.940) < 1e-3
    assert set(np.bincount(y).tolist()) == {6000}
    _, yt = data.load_fashion_mnist("test")
    assert set(np.bincount(yt).tolist()) == {1000}


def test_text_datasets():
    require_data("tinyshakespeare")
    text = data.load_tinyshakespeare()
    assert len(text) == 1115394 and len(set(text)) == 65 and text.startswith("First Citizen:")
    require_data("wikitext-2")
    assert len(data.load_wikitext2("valid")) == 217646
    assert len(data.load_wikitext2("test")) == 245569


def test_omniglot():
    require_data("omniglot")
    runs = data.load_omniglot_runs()
    assert len(runs) == 20
    for r in runs:
        assert r.train.shape == r.test.shape == (20, 105, 105)
        assert sorted(r.answer.tolist()) == list(range(20))
    small = data.load_omniglot(background=True, max_characters=3)
    assert small.images.shape == (60, 105, 105) and small.images.dtype == bool
    assert np.bincount(small.character).tolist() == [20, 20, 20]
    assert 0.01 < small.images.mean() < 0.2  # strokes are thin


@pytest.mark.slow
def test_omniglot_evaluation_set_complete():
    require_data("omniglot")
    ev = data.load_omniglot(background=False)
    assert ev.images.shape == (13180, 105, 105)
    assert len(ev.characters) == 659 and len(ev.alphabets) == 20


def test_adult():
    require_data("adult")
    tr, te = data.load_adult("train"), data.load_adult("test")
    assert tr.numeric.shape == (32561, 6) and tr.categorical.shape == (32561, 8)
    assert int(tr.y.sum()) == 7841 and len(te.y) == 16281
    assert "?" in tr.categories["workclass"]
    assert tr.categories == te.categories


def test_digits_and_generators_are_deterministic():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and x.max() == 16 and np.bincount(y).min() >= 170
    for gen in (
        lambda r: data.two_spirals(200, r),
        lambda r: data.moons(200, r),
        lambda r: data.gaussian_mixture_2d(200, 5, r),
    ):
        (a, la), (b, lb) = gen(np.random.default_rng(3)), gen(np.random.default_rng(3))
        assert a.shape == (200, 2) and np.array_equal(a, b) and np.array_equal(la, lb)
    xs = np.linspace(0, 1, 1025)
    saw = data.tent_iterate(xs, 3)
    assert saw.max() == 1.0 and saw.min() == 0.0 and np.isclose(saw[128], 1.0)
    x1, y1 = data.function_1d("wiggle", 50)
    assert x1.shape == y1.shape == (50,)
