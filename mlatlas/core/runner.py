"""Running labs: discovery, the run folder, result.json, and reading past runs back.

A run writes ``runs/<topic>/<lab>/<run-id>/`` with run.json (what was asked, written first),
config.json, metrics.jsonl, checkpoints/, the figures, and result.json (a `RunRecord`, claims
decided by the core) written last and atomically: a folder without it is not a result.
Same seed, same scale, same machine: same numbers, also after a kill and `resume_run`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import json
import shutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mlatlas.core import distributed, resume
from mlatlas.core.data.registry import DataError
from mlatlas.core.fileio import atomic_write_json, file_lock
from mlatlas.core.lab import SCALES, ConfigError, Lab, LabSpec, _jsonable, registered_labs
from mlatlas.core.record import FORMAT, RunRecord
from mlatlas.core.resume import Journal, ResumeError
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


RUN_FILE = "run.json"  # written first: what was asked for; result.json is written last
LOCK_FILE = ".lock"  # held by the process working on the run; the kernel drops it at death


def _new_run_dir(out: Path, spec: LabSpec, scale: str, seed: int) -> Path:
    """A fresh folder; `mkdir` is atomic, so concurrent runs of one lab never share one."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = out / spec.topic / spec.name
    base.mkdir(parents=True, exist_ok=True)
    run_id = f"{stamp}-{scale}-s{seed}"
    for k in itertools.count(1):
        d = base / (run_id if k == 1 else f"{run_id}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def on_device(dev: torch.device) -> contextlib.AbstractContextManager:
    """Where a lab makes its tensors: on an accelerator, every factory call (modules'
    parameters, ``torch.randn``, ``torch.as_tensor`` ...) defaults to `dev`, so a lab written
    once runs on the CPU and on a GPU alike. On the CPU nothing changes: the default-device
    mode costs a Python call per torch function, which only pays where it moves work."""
    return contextlib.nullcontext() if dev.type == "cpu" else torch.device(dev)


def device_note(requested: torch.device, used: set[str]) -> str | None:
    """A note when the lab trained elsewhere than the device asked for: a lab that builds its
    models on the CPU runs there whatever ``--device`` says, and its record must not hide it."""
    other = sorted(d for d in used if torch.device(d).type != requested.type)
    if requested.type == "cpu" or not other:
        return None
    return (
        f"device {requested} was requested, but this lab's training ran on {', '.join(other)}: "
        "it builds its models there"
    )


def run_lab(
    spec: LabSpec,
    scale: str = "default",
    seed: int = 0,
    device: str = "auto",
    out: str | Path = "runs",
    overrides: dict[str, Any] | None = None,
    show_progress: bool | None = None,
    checkpoint_every: float | None = None,
) -> RunRecord:
    """Run one lab, decide its claims, and write its run folder. Errors inside the lab are
    recorded (status "error" with the traceback); a ConfigError (a bad request) is raised.

    The run checkpoints its `fit` calls every `checkpoint_every` seconds (default
    ``MLATLAS_CHECKPOINT_EVERY`` or 60) so that `resume_run` can finish it after a kill.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    dev = pick_device(device)
    info = {
        "topic": spec.topic,
        "lab": spec.name,
        "scale": scale,
        "seed": seed,
        "device": str(dev),
        "overrides": _jsonable(dict(overrides or {})),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if distributed.active():
        info["world_size"] = distributed.world_size()
        info["backend"] = distributed.backend()
    run_dir = None
    if distributed.is_main():  # one folder per run: rank 0 makes it, the others learn its name
        run_dir = _new_run_dir(Path(out), spec, scale, seed)
        try:
            atomic_write_json(run_dir / RUN_FILE, info)
        except OSError:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
    run_dir, info["started_at"] = distributed.broadcast_object((run_dir, info["started_at"]))
    return _execute(spec, run_dir, info, dict(overrides or {}), show_progress, checkpoint_every)


def resume_run(
    run_dir: str | Path, show_progress: bool | None = None, checkpoint_every: float | None = None
) -> RunRecord:
    """Finish a killed run in its own folder, to the numbers an uninterrupted run gives."""
    if distributed.active():
        raise ResumeError(
            "a run resumes in one process: run mlatlas resume (or --resume) without --nproc "
            "or torchrun"
        )
    d = Path(run_dir)
    info = _read_run_info(d)
    if (d / "result.json").exists():
        raise ResumeError(f"{d} is complete (it has result.json): nothing to resume")
    if is_running(d):
        raise ResumeError(f"{d} is being run by another process right now")
    spec = get_lab(info["topic"], info["lab"])
    overrides = dict(info.get("overrides") or {})
    return _execute(spec, d, info, overrides, show_progress, checkpoint_every, resuming=True)


def _read_run_info(d: Path) -> dict[str, Any]:
    f = d / RUN_FILE
    if not d.is_dir():
        raise ResumeError(f"{d} is not a folder")
    if not f.is_file():
        raise ResumeError(f"{d} is not a run folder (it has no {RUN_FILE})")
    try:
        info = json.loads(f.read_text())
        for key in ("topic", "lab", "scale", "seed", "device", "started_at"):
            info[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResumeError(f"{f} is unreadable ({exc}); the run cannot be resumed") from None
    return info


def _execute(
    spec: LabSpec,
    run_dir: Path,
    info: dict[str, Any],
    overrides: dict[str, Any],
    show_progress: bool | None,
    checkpoint_every: float | None,
    resuming: bool = False,
) -> RunRecord:
    scale, seed = info["scale"], int(info["seed"])
    dev = pick_device(info["device"])
    main = distributed.is_main()  # data parallel: rank 0 alone writes and shows progress
    lock = file_lock(run_dir / LOCK_FILE, timeout=0) if main else contextlib.nullcontext()
    try:
        lock.__enter__()
    except TimeoutError:
        raise ResumeError(f"{run_dir} is being run by another process right now") from None
    try:
        ctx = Lab(
            spec,
            scale,
            seed,
            dev,
            run_dir,
            overrides,
            show_progress if main else False,
            writes=main,
        )
        journal = Journal(run_dir, checkpoint_every, resuming=resuming)
        ctx.journal = journal if main else None
        seed_global(derive_seed(seed, "lab", spec.topic, spec.name))
        t0 = time.perf_counter()
        status, error, claims = "ok", None, []
        with PeakMemory() as mem, resume.active(journal if main else None, ctx):
            try:
                with on_device(dev):
                    spec.fn(ctx)
                if ctx.cfg is None and ctx.overrides:
                    raise ConfigError(f"lab {spec.name} takes no settings; drop --set")
                if journal.replaying:
                    raise ResumeError(
                        f"cannot resume {run_dir}: the lab ended before reaching its last "
                        "checkpoint, so it does not replay the killed run; start a new run"
                    )
                claims = ctx.decided_claims()
                if journal.write_error is not None:
                    ctx.note(
                        f"checkpoints stopped: {journal.write_error}; the run went on, but a "
                        "kill before its end would have lost the work since the last one"
                    )
            except ConfigError:
                if not resuming and main:
                    _cleanup(run_dir)
                raise
            except DataError:
                # the user's data, not the lab, is at fault: a one-line error (exit 2). A run
                # that already checkpointed stays, to be resumed once the file is fixed.
                if not resuming and main and Journal(run_dir, 0.0).progress() is None:
                    _cleanup(run_dir)
                raise
            except Exception as exc:
                status, error = "error", "".join(traceback.format_exception(exc))
            finally:
                ctx.discard_scratch()
        parallel = int(info.get("world_size", 1))
        if distributed.active():
            ctx.note(
                f"trained data-parallel on {distributed.describe()}: each single-model fit "
                "split its batches across the processes and averaged their gradients"
            )
        elif parallel > 1:
            ctx.note(f"started data-parallel on {parallel} processes; resumed in one process")
        mismatch = device_note(dev, ctx.fit_devices)
        if mismatch:
            ctx.note(mismatch)
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
            divergences=_jsonable(ctx.divergences),
            versions=versions(),
            started_at=info["started_at"],
            wall_time_s=round(time.perf_counter() - t0, 3),
            memory=mem.as_dict(),
            engine_threads=torch.get_num_threads(),
            error=error,
            source=spec.source,
            resumed=int(info.get("resumed", 0)) + int(resuming),
        )
        ctx._write_json("result.json", record.to_dict())
        if main:
            journal.finish()
    finally:
        lock.__exit__(None, None, None)
    if status == "error" and distributed.active():
        # A process that failed mid-lab leaves the others inside a collective it never joins;
        # going on to the next lab would pair its collectives with theirs. It leaves the group
        # instead (no barrier): their collectives fail at once and torchrun ends the run.
        sys.stderr.write(
            f"mlatlas: {spec.topic}/{spec.name} failed on process {distributed.rank()}:\n{error}"
        )
        distributed.shutdown(1)
    if not main:
        record.dir = run_dir
        return record
    return RunRecord.load(run_dir)


def _cleanup(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def is_running(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock."""
    lock = Path(run_dir) / LOCK_FILE
    if not lock.exists():
        return False
    try:
        with file_lock(lock, timeout=0):
            return False
    except TimeoutError:
        return True
    except OSError:
        return False


def _incomplete_record(d: Path) -> RunRecord | None:
    """A run folder without result.json: "running" if its process lives, else "incomplete"."""
    try:
        info = _read_run_info(d)
    except ResumeError:
        return None
    prog = Journal(d, 0.0).progress()
    progress = "no checkpoint yet"
    if prog is not None:
        state = "done" if prog["done"] else f"step {prog['step']}/{prog['steps']}"
        progress = f"fit {prog['fit']} {prog['desc']!r} {state}"
    number = 0
    try:
        t = get_topic(info["topic"])
        number, title = t.number, info["lab"]
    except UnknownNameError:
        title = info["lab"]
    return RunRecord(
        topic=str(info["topic"]),
        topic_number=number,
        lab=str(info["lab"]),
        title=title,
        insights=[],
        scale=str(info["scale"]),
        seed=int(info["seed"]),
        device=str(info["device"]),
        status="running" if is_running(d) else "incomplete",
        config={"overrides": info.get("overrides") or {}},
        started_at=str(info["started_at"]),
        progress=progress,
        dir=d,
    )


def find_incomplete(
    out: str | Path, spec: LabSpec, scale: str, seed: int, overrides: dict[str, Any] | None
) -> Path | None:
    """The newest killed (not running) run of `spec` with the same scale, seed and settings."""
    want = _jsonable(dict(overrides or {}))
    best: tuple[str, Path] | None = None
    for f in (Path(out) / spec.topic / spec.name).glob(f"*/{RUN_FILE}"):
        d = f.parent
        if (d / "result.json").exists() or is_running(d):
            continue
        try:
            info = _read_run_info(d)
        except ResumeError:
            continue
        same = (info["scale"], int(info["seed"]), info.get("overrides") or {}) == (
            scale,
            seed,
            want,
        )
        if same and (best is None or (info["started_at"], str(d)) > (best[0], str(best[1]))):
            best = (info["started_at"], d)
    return None if best is None else best[1]


def list_runs(out: str | Path = "runs", include_incomplete: bool = False) -> list[RunRecord]:
    """Every run record under `out` (current format only), newest first.

    A run is a result only once its result.json exists (written last, atomically). With
    `include_incomplete`, folders without one are listed too, as "running" (a live process
    holds them) or "incomplete" (killed; `resume_run` finishes them), with their progress.
    """
    rows = []
    for d in sorted(p for p in Path(out).glob("*/*/*") if p.is_dir()):
        f = d / "result.json"
        if not f.exists():
            if include_incomplete and (r := _incomplete_record(d)) is not None:
                rows.append(r)
            continue
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
