"""Checkpoints as safetensors (weights) plus JSON (everything else); never pickle.

Pickle executes code on load; safetensors holds only tensors and a JSON header, so a
checkpoint from anywhere is safe to open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_checkpoint(
    path: str | Path, tensors: dict[str, torch.Tensor] | torch.nn.Module, state: dict | None = None
) -> Path:
    """Write `path`.safetensors and `path`.json. `state` must be JSON-serialisable."""
    stem = Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    save_file(flat, str(stem.with_suffix(".safetensors")))
    stem.with_suffix(".json").write_text(json.dumps(state or {}, indent=2, sort_keys=True))
    return stem


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what `save_checkpoint` wrote: (tensors, state)."""
    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    state_file = stem.with_suffix(".json")
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    return tensors, state
