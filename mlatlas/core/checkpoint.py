"""Checkpoints as safetensors (weights) plus JSON (everything else); never arbitrary pickle.

Pickle executes code on load; safetensors holds only tensors and a JSON header, so a
checkpoint from anywhere is safe to open. State that needs torch's own format (optimizer
state, RNG states) goes through `load_torch_state`, which unpickles only tensors and plain
containers. Every file is written atomically, so a kill leaves the old file or the new one.
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mlatlas.core.fileio import atomic_save, atomic_write_text

_ALLOWED = "only tensors, numbers, strings, lists, tuples, dicts and a few torch types load"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read safely: not the format its name says, damaged,
    or a pickle that asks to build arbitrary objects."""


def save_torch_state(path: str | Path, obj: Any) -> Path:
    """torch.save `obj` to `path` atomically. Keep `obj` to tensors and plain containers, or
    `load_torch_state` will refuse to read it back."""
    return atomic_save(path, lambda tmp: torch.save(obj, tmp))


def _refusal(path: Path, exc: pickle.UnpicklingError) -> CheckpointError:
    """Turn torch's weights-only error, whose text suggests the unsafe way out, into a
    message that names the file and what it asked for."""
    lines = str(exc).splitlines()
    asked = [ln.strip() for ln in lines if "GLOBAL" in ln or "Unsupported" in ln]
    detail = f" ({asked[0].rstrip('.')})" if asked else ""
    return CheckpointError(
        f"{path} cannot be loaded safely{detail}: mlatlas refuses to unpickle arbitrary "
        f"objects; {_ALLOWED}. Re-save it as plain tensors and numbers, or with "
        "save_checkpoint (safetensors + JSON)."
    )


def load_torch_state(path: str | Path) -> Any:
    """torch.load with ``weights_only=True`` on the CPU: tensors and plain containers load,
    anything that would run code on load raises CheckpointError naming the file."""
    p = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise _refusal(p, exc) from None
    except Exception as exc:  # missing or cut short: the parser fails in many ways
        raise CheckpointError(
            f"{p}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from None


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor] | torch.nn.Module, state: dict | None = None
) -> Path:
    """Write `path`.safetensors and `path`.json, each atomically. `state` must be
    JSON-serialisable; it is serialised first, so a state that is not leaves both old files
    as they were."""
    stem = Path(path)
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    text = json.dumps(state or {}, indent=2, sort_keys=True)
    atomic_save(stem.with_suffix(".safetensors"), lambda tmp: save_file(flat, str(tmp)))
    atomic_write_text(stem.with_suffix(".json"), text)
    return stem


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise CheckpointError(
            f"{path} is not a safetensors file ({exc}); it may be damaged, or a pickle "
            "renamed to .safetensors, which mlatlas does not open"
        ) from None


def _load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not JSON ({exc}); it may be damaged") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a JSON object")
    return state


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what `save_checkpoint` wrote: (tensors, state). A file that is not what its
    name says raises CheckpointError naming it."""
    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    tensors = _load_tensors(stem.with_suffix(".safetensors"))
    return tensors, _load_state(stem.with_suffix(".json"))
