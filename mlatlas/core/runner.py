"""Running labs: discovery, the run folder, result.json, and reading past runs back.

A run writes ``runs/<topic>/<lab>/<run-id>/`` with config.json, metrics.jsonl,
result.json (a `RunRecord`, claims decided by the core) and the figures.
Same seed, same scale, same machine: same numbers.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mlatlas.core.lab import SCALES, ConfigError, Lab, LabSpec, _jsonable, registered_labs
from mlatlas.core.record import FORMAT, RunRecord
from mlatlas.core.runtime import PeakMemory, pick_device, versions
from mlatlas.core.seeding import derive_seed, seed_global
from mlatlas.guide import TOPICS, Topic, UnknownNameError, get_topic


def has_code(topic: Topic) -> bool:
    """Whether the topic's package exists yet."""
    try:
        return importlib.util.find_spec(topic.module) is not None
    except ModuleNotFoundError:
        return False


def discover(topic: str | int | Topic) -> list[LabSpec]:
    """Import the topic's ``labs`` package (if the topic has one) and return its labs in order."""
    t = topic if isinstance(topic, Topic) else get_topic(topic)
    if not has_code(t):
        return []
    if importlib.util.find_spec(f"{t.module}.labs") is None:
        return []
    importlib.import_module(f"{t.module}.labs")
    return registered_labs(t.slug)


def implemented_topics() -> list[Topic]:
    return [t for t in TOPICS if discover(t)]


def get_lab(topic: str | int, name: str) -> LabSpec:
    t = get_topic(topic)
    labs = discover(t)
    for spec in labs:
        if spec.name == name:
            return spec
    valid = ", ".join(s.name for s in labs) or "none yet"
    raise UnknownNameError(f"unknown lab {name!r} of topic {t.slug}; valid labs: {valid}")


def _run_dir(out: Path, spec: LabSpec, scale: str, seed: int) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = out / spec.topic / spec.name
    run_id = f"{stamp}-{scale}-s{seed}"
    d, k = base / run_id, 1
    while d.exists():
        k += 1
        d = base / f"{run_id}-{k}"
    d.mkdir(parents=True)
    return d


def run_lab(
    spec: LabSpec,
    scale: str = "default",
    seed: int = 0,
    device: str = "auto",
    out: str | Path = "runs",
    overrides: dict[str, Any] | None = None,
    show_progress: bool | None = None,
) -> RunRecord:
    """Run one lab, decide its claims, and write its run folder. Errors inside the lab are
    recorded (status "error" with the traceback); a ConfigError (a bad request) is raised.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    dev = pick_device(device)
    run_dir = _run_dir(Path(out), spec, scale, seed)
    ctx = Lab(spec, scale, seed, dev, run_dir, dict(overrides or {}), show_progress)
    seed_global(derive_seed(seed, "lab", spec.topic, spec.name))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    status, error, claims = "ok", None, []
    with PeakMemory() as mem:
        try:
            spec.fn(ctx)
            if ctx.cfg is None and ctx.overrides:
                raise ConfigError(f"lab {spec.name} takes no settings; drop --set")
            claims = ctx.decided_claims()
        except ConfigError:
            _cleanup_empty(run_dir)
            raise
        except Exception as exc:
            status, error = "error", "".join(traceback.format_exception(exc))
    wall = time.perf_counter() - t0
    record = RunRecord(
        topic=spec.topic,
        topic_number=get_topic(spec.topic).number,
        lab=spec.name,
        title=spec.title,
        insights=list(spec.insights),
        scale=scale,
        seed=seed,
        device=str(dev),
        status=status,
        config=_jsonable(dict(ctx.cfg or {})),
        metrics=ctx.metrics,
        tables=ctx.tables,
        figures=ctx.figures,
        claims=_jsonable(claims),
        datasets=ctx.datasets,
        notes=ctx.notes,
        versions=versions(),
        started_at=started,
        wall_time_s=round(wall, 3),
        memory=mem.as_dict(),
        engine_threads=torch.get_num_threads(),
        error=error,
        source=spec.source,
    )
    ctx._write_json("result.json", record.to_dict())
    return RunRecord.load(run_dir)


def _cleanup_empty(run_dir: Path) -> None:
    for p in run_dir.glob("*"):
        p.unlink()
    run_dir.rmdir()


def list_runs(out: str | Path = "runs") -> list[RunRecord]:
    """Every run record under `out` (current format only), newest first."""
    rows = []
    for f in Path(out).glob("*/*/*/result.json"):
        try:
            r = RunRecord.load(f)
        except (OSError, json.JSONDecodeError, TypeError):
            continue
        if r.format >= FORMAT:
            rows.append(r)
    rows.sort(key=lambda r: (r.started_at, str(r.dir)), reverse=True)
    return rows


def latest_runs(
    out: str | Path = "runs", scale: str | None = None
) -> dict[tuple[str, str], RunRecord]:
    """The newest run of each (topic, lab), optionally of one scale."""
    latest: dict[tuple[str, str], RunRecord] = {}
    for r in list_runs(out):
        if scale is not None and r.scale != scale:
            continue
        latest.setdefault((r.topic, r.lab), r)
    return latest
