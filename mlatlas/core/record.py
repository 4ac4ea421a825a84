"""The run record: what one run of a lab wrote to result.json, as a typed object.

The runner alone writes it; the CLI and the report read it back with `RunRecord.load`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mlatlas.core.claims import summarize

FORMAT = 2  # result.json layout version: 2 = claims decided by the core (kind, verdict, n)


@dataclass
class RunRecord:
    topic: str
    topic_number: int
    lab: str
    title: str
    insights: list[str]
    scale: str
    seed: int
    device: str
    status: str  # "ok" or "error"; listings also show "running" and "incomplete" runs
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    divergences: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    wall_time_s: float = 0.0
    memory: dict[str, float] = field(default_factory=dict)
    engine_threads: int = 0
    error: str | None = None
    source: str = ""
    resumed: int = 0  # how many times a killed run was resumed to give this record
    progress: str = ""  # for a run without result.json: how far it got
    format: int = FORMAT
    dir: Path | None = field(default=None, compare=False)  # where it was read from; not stored

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def experiments(self) -> list[dict[str, Any]]:
        return [c for c in self.claims if c.get("kind") != "check"]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return [c for c in self.claims if c.get("kind") == "check"]

    def counts(self) -> dict[str, int]:
        return summarize(self.claims)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("dir")
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any], dir: Path | None = None) -> RunRecord:
        names = {f.name for f in fields(cls)} - {"dir"}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("format", 1)
        return cls(**known, dir=dir)

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        """Read ``result.json`` (or the run folder holding it)."""
        p = Path(path)
        if p.is_dir():
            p = p / "result.json"
        return cls.from_dict(json.loads(p.read_text()), dir=p.parent)
