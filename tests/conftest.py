"""Shared fixtures. Tests never touch the network (MLATLAS_OFFLINE=1) except the download
tests, which talk to a local http.server on 127.0.0.1, and use a private cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlatlas.core.data import is_available

IN_CI = bool(os.environ.get("CI"))
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _hermetic_env(tmp_path_factory: pytest.TempPathFactory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MLATLAS_OFFLINE", "1")
    if "MLATLAS_CACHE" not in os.environ:
        mp.setenv("MLATLAS_CACHE", str(tmp_path_factory.mktemp("mlatlas-cache")))
    if "MLATLAS_DATA" not in os.environ and (SHARED / "datasets").is_dir():
        mp.setenv("MLATLAS_DATA", str(SHARED / "datasets"))
    yield
    mp.undo()


def require_data(name: str) -> None:
    """Skip when a real dataset is absent, except in CI, where absence is a failure."""
    if is_available(name):
        return
    message = f"dataset {name!r} not found in MLATLAS_DATA ({os.environ.get('MLATLAS_DATA')})"
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)
