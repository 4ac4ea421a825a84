"""Checkpoints that are safe to open and survive a failed write: crafted pickles are refused
before any of their code runs, files that are not what their name says raise a
CheckpointError naming them, and saves are atomic."""

from __future__ import annotations

import builtins
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mlatlas.core import checkpoint as ck
from mlatlas.core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_torch_state,
    save_checkpoint,
    save_torch_state,
)

REFUSED = "refuses to unpickle arbitrary objects"


class _System:
    """Unpickling this runs ``touch marker`` through os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


class _Exec:
    """Unpickling this runs Python that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _raw_pickle(protocol: int, payload: type) -> Callable[[Path, Path], None]:
    def write(path: Path, marker: Path) -> None:
        path.write_bytes(pickle.dumps({"w": payload(marker)}, protocol=protocol))

    return write


def _torch_file(payload: type) -> Callable[[Path, Path], None]:
    def write(path: Path, marker: Path) -> None:
        torch.save({"weights": torch.zeros(2), "extra": payload(marker)}, path)

    return write


CRAFTED = {
    "pickle-p2-os.system": _raw_pickle(2, _System),
    "pickle-p4-os.system": _raw_pickle(4, _System),
    "pickle-p0-exec": _raw_pickle(0, _Exec),
    "torch.save-os.system": _torch_file(_System),
    "torch.save-exec": _torch_file(_Exec),
}


def test_crafted_pickles_really_run_code_when_unpickled(tmp_path):
    """The payloads below are live: plain pickle.loads creates the marker."""
    for name, write in CRAFTED.items():
        if name.startswith("pickle"):
            marker = tmp_path / f"{name}.marker"
            write(tmp_path / f"{name}.pkl", marker)
            pickle.loads((tmp_path / f"{name}.pkl").read_bytes())
            assert marker.exists(), name


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_load_torch_state_refuses_crafted_pickles(tmp_path, case):
    path, marker = tmp_path / "state.pt", tmp_path / "marker"
    CRAFTED[case](path, marker)
    with pytest.raises(CheckpointError) as err:
        load_torch_state(path)
    assert str(path) in str(err.value) and REFUSED in str(err.value)
    assert "weights_only` set to `False`" not in str(err.value)  # no unsafe advice
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_load_checkpoint_refuses_a_pickle_named_safetensors(tmp_path, case):
    stem, marker = tmp_path / "model", tmp_path / "marker"
    CRAFTED[case](stem.with_suffix(".safetensors"), marker)
    for path in (stem, stem.with_suffix(".safetensors")):
        with pytest.raises(CheckpointError, match="not a safetensors file") as err:
            load_checkpoint(path)
        assert str(stem.with_suffix(".safetensors")) in str(err.value)
    assert not marker.exists()


def test_load_checkpoint_names_a_json_that_is_not_json(tmp_path):
    stem = save_checkpoint(tmp_path / "model", {"w": torch.ones(3)}, {"step": 3})
    stem.with_suffix(".json").write_bytes(b"\x80\x04not json")
    with pytest.raises(CheckpointError, match="is not JSON") as err:
        load_checkpoint(stem)
    assert str(stem.with_suffix(".json")) in str(err.value)
    stem.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a list, not a JSON object"):
        load_checkpoint(stem)


def test_damaged_files_raise_checkpoint_error(tmp_path):
    stem = save_checkpoint(tmp_path / "model", {"w": torch.ones(1000)})
    st = stem.with_suffix(".safetensors")
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        load_checkpoint(stem)
    save_torch_state(tmp_path / "s.pt", {"w": torch.ones(1000)})
    (tmp_path / "s.pt").write_bytes((tmp_path / "s.pt").read_bytes()[:200])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for name in ("s.pt", "junk.pt", "missing.pt"):
        with pytest.raises(CheckpointError, match=re.escape(name)):
            load_torch_state(tmp_path / name)


def test_torch_state_round_trip_with_plain_containers(tmp_path):
    state = {
        "model": {"w": torch.randn(3, 2)},
        "rng": {"python": [3, list(range(5)), None], "torch": torch.get_rng_state()},
        "step": 7,
        "loss": 0.25,
        "events": "[]",
        "pair": (1, "a"),
    }
    path = save_torch_state(tmp_path / "state.pt", state)
    back = load_torch_state(path)
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["rng"]["python"] == state["rng"]["python"] and back["pair"] == (1, "a")
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def _fail_midway(path: str | Path, *args: object) -> None:
    Path(path).write_bytes(b"half a file")
    raise OSError("disk full")


def test_failed_saves_leave_the_previous_files(tmp_path, monkeypatch):
    """A writer that dies halfway (disk full, kill) leaves the old files and no temporary."""
    stem = save_checkpoint(tmp_path / "model", {"w": torch.ones(2)}, {"step": 1})
    save_torch_state(tmp_path / "state.pt", {"step": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(TypeError):  # state not JSON: nothing is written at all
        save_checkpoint(stem, {"w": torch.zeros(2)}, {"bad": object()})
    monkeypatch.setattr(ck, "save_file", lambda tensors, path: _fail_midway(path))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(stem, {"w": torch.zeros(2)}, {"step": 2})
    monkeypatch.setattr(torch, "save", lambda obj, path: _fail_midway(path))
    with pytest.raises(OSError, match="disk full"):
        save_torch_state(tmp_path / "state.pt", {"step": 2})

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    tensors, state = load_checkpoint(stem)
    assert torch.equal(tensors["w"], torch.ones(2)) and state == {"step": 1}
