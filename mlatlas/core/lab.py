"""Labs and claims.

A lab is a function that trains or probes something and records what it saw. It receives a
`Lab` context that resolves its configuration for the chosen scale, logs metrics with a
progress bar, saves figures and tables, and states falsifiable claims:

    @lab("activations", insights=["saturation problems"])
    def saturation(ctx: Lab) -> None:
        cfg = ctx.config(depth=per_scale(4, 10, 10), steps=per_scale(50, 2000, 10000))
        ...
        c = ctx.claim("tanh keeps more gradient at layer 1 than sigmoid",
                      quantity="layer-1 gradient ratio, tanh / sigmoid",
                      direction=">", margin=1.0, paired=True, log=True)
        for rep in ctx.replicates(cfg.seeds):   # seed id + seeded streams
            ...
            c.add(rep.id, tanh_grad, sigmoid_grad)
        ctx.check("conv commutes with shifts", value=max_err, direction="<", bound=1e-10)

The core decides every verdict (`mlatlas.core.claims`); a lab never computes one.

A setting that differs between scales says so: ``per_scale(smoke, default, full)``. Every
other value, a tuple of three widths included, is the same at every scale. A lab that reads a
setting it did not define (``cfg.stpes``) fails when it calls ``ctx.config``, before any work.
"""

from __future__ import annotations

import ast
import functools
import inspect
import math
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mlatlas.core.claims import Check, ClaimError, Experiment, decide_lab
from mlatlas.core.figures import save_figure
from mlatlas.core.fileio import append_jsonl, atomic_write_json
from mlatlas.core.seeding import (
    Replicate,
    derive_seed,
    numpy_rng,
    replicate,
    seed_global,
    torch_generator,
)
from mlatlas.guide import Topic, get_topic

SCALES = ("smoke", "default", "full")
T = TypeVar("T")


class LabError(Exception):
    """A lab was defined or used wrongly (a bug in the lab, not in the user's request)."""


class ConfigError(ValueError):
    """A user request cannot be met: bad --set key or value, bad scale. Message lists choices."""


@dataclass(frozen=True)
class LabSpec:
    topic: str  # topic slug
    name: str
    fn: Callable[[Lab], None]
    insights: tuple[str, ...]
    title: str  # first line of the docstring
    timing: bool = False  # its samples are wall-clock timings: they repeat only up to noise

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()

    @property
    def source(self) -> str:
        code = self.fn.__code__
        return f"{code.co_filename}:{code.co_firstlineno}"


_REGISTRY: dict[str, dict[str, LabSpec]] = {}


def _match_insight(topic: Topic, name: str) -> str:
    for insight in topic.insights:
        if insight.lower() == name.strip().lower():
            return insight
    raise LabError(
        f"{name!r} is not an insight of topic {topic.slug}; its insights: {list(topic.insights)}"
    )


def lab(
    topic: str, insights: Sequence[str], *, timing: bool = False
) -> Callable[[Callable[[Lab], None]], Callable]:
    """Register `fn` as a lab of `topic` that measures the given key insights.

    timing: the lab's samples are wall-clock measurements, so a rerun with the same seed
    repeats its claims only up to machine noise (every other lab repeats exactly)."""
    t = get_topic(topic)
    resolved = tuple(_match_insight(t, i) for i in insights)
    if not resolved:
        raise LabError("a lab measures at least one insight")

    def register(fn: Callable[[Lab], None]) -> Callable[[Lab], None]:
        doc = (fn.__doc__ or "").strip()
        if not doc:
            raise LabError(f"lab {fn.__name__} needs a docstring: its first line is its title")
        spec = LabSpec(t.slug, fn.__name__, fn, resolved, doc.splitlines()[0], timing)
        _REGISTRY.setdefault(t.slug, {})[spec.name] = spec
        fn.spec = spec  # type: ignore[attr-defined]
        return fn

    return register


@contextmanager
def isolated_registry() -> Iterator[None]:
    """Scratch labs registered inside this block are forgotten at its end (for tests). Labs of
    the package's own modules stay: their module is imported once, so a lab first imported
    inside the block could never register again."""
    saved = {topic: dict(labs) for topic, labs in _REGISTRY.items()}
    try:
        yield
    finally:
        for topic, labs in _REGISTRY.items():
            for name, spec in labs.items():
                if spec.fn.__module__.startswith("mlatlas."):
                    saved.setdefault(topic, {}).setdefault(name, spec)
        _REGISTRY.clear()
        _REGISTRY.update(saved)


def registered_labs(topic: str) -> list[LabSpec]:
    return list(_REGISTRY.get(get_topic(topic).slug, {}).values())


@dataclass(frozen=True)
class PerScale(Generic[T]):
    """A setting's value at each scale; `Lab.config` resolves it to the one of the run's scale.

    A marker type, so that no other value is mistaken for one: a tuple of three layer widths
    stays a tuple of three widths."""

    smoke: T
    default: T
    full: T

    def at(self, scale: str) -> T:
        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
        return getattr(self, scale)


def per_scale(smoke: T, default: T, full: T) -> PerScale[T]:
    """``per_scale(50, 2000, 10000)``: 50 at smoke scale, 2000 at default, 10000 at full."""
    return PerScale(smoke, default, full)


class Config(dict):
    """Resolved configuration: a dict that also reads as attributes (``cfg.steps``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"no setting {key!r}; the lab defines: {', '.join(sorted(self))}"
            ) from None


_DICT_ATTRS = frozenset(dir(dict))


@functools.cache
def settings_read(fn: Callable[..., Any]) -> frozenset[str]:
    """The setting names a lab function reads from the value it binds to ``<x>.config(...)``:
    ``cfg.steps`` and ``cfg["steps"]`` anywhere in its body (nested functions included).
    Read from its source, so a misspelt name is found before the lab does any work."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr == "config"
        ):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in names and node.attr not in _DICT_ATTRS:
                read.add(node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            key = node.slice
            if node.value.id in names and isinstance(key, ast.Constant) and type(key.value) is str:
                read.add(key.value)
    return frozenset(read)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with value read as a Python literal when it is one, else as a string."""
    if "=" not in text:
        raise ConfigError(f"bad --set {text!r}: expected key=value, e.g. --set steps=100")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ConfigError(f"bad --set {text!r}: {key!r} is not a setting name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError):
        value = raw  # not a Python literal: the text itself
    return key, value


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give an override the type of the default, or explain why it cannot have it."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return str(value)
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, (int, float)):
            return [value]
    else:
        return value
    raise ConfigError(
        f"bad --set {key}={value!r}: expected a value of type {type(default).__name__} "
        f"like {default!r}"
    )


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else str(v)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().tolist())
    return x


@dataclass
class Lab:
    """What a lab function receives: its scale, seed, device, run folder and recorders."""

    spec: LabSpec
    scale: str
    seed: int
    device: torch.device
    dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    show_progress: bool | None = None  # None: MLATLAS_PROGRESS=1/0, else only on a terminal
    writes: bool = True  # False on data-parallel ranks other than 0: they write no file

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(f"unknown scale {self.scale!r}; valid scales: {', '.join(SCALES)}")
        self.topic = get_topic(self.spec.topic)
        self.rng = numpy_rng(self.seed, "lab")  # for one-off choices; replicates have their own
        self.cfg: Config | None = None
        self.metrics: dict[str, Any] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.figures: dict[str, dict[str, Any]] = {}
        self.claims: list[Experiment | Check] = []
        self.datasets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.divergences: list[dict[str, Any]] = []  # replicates whose loss turned NaN/inf
        self.fit_devices: set[str] = set()  # where this lab's `fit` calls found their models
        self.journal: Any = None  # the run's resume journal (`mlatlas.core.resume`), if any
        self._t0 = time.perf_counter()
        self._bar: tqdm | None = None
        self._metrics_file = self.dir / "metrics.jsonl"
        self._scratch: Path | None = None

    # configuration -------------------------------------------------------------------
    def config(self, **settings: Any) -> Config:
        """Resolve settings for this scale; apply --set overrides; write config.json."""
        if self.cfg is not None:
            raise LabError("ctx.config() is called once per lab")
        cfg = Config()
        for key, value in settings.items():
            cfg[key] = value.at(self.scale) if isinstance(value, PerScale) else value
        undefined = sorted(settings_read(self.spec.fn) - set(cfg))
        if undefined:
            raise LabError(
                f"lab {self.spec.name} reads setting(s) {', '.join(undefined)} that its "
                f"ctx.config(...) does not define; defined: {', '.join(sorted(cfg))}"
            )
        unknown = sorted(set(self.overrides) - set(cfg))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} for lab {self.spec.name}; "
                f"valid settings: {', '.join(sorted(cfg))}"
            )
        for key, value in self.overrides.items():
            cfg[key] = _coerce(key, value, cfg[key])
        self.cfg = cfg
        self._write_json("config.json", self._config_record())
        return cfg

    def _config_record(self) -> dict[str, Any]:
        return {
            "topic": self.spec.topic,
            "lab": self.spec.name,
            "scale": self.scale,
            "seed": self.seed,
            "device": str(self.device),
            "settings": _jsonable(dict(self.cfg or {})),
            "overrides": _jsonable(self.overrides),
        }

    # recording -------------------------------------------------------------------
    def progress(self, iterable: Iterable[T] | int, desc: str = "", total: int | None = None):
        """A progress bar over `iterable` (or range(n)); `log` shows metrics on it."""
        it = range(iterable) if isinstance(iterable, int) else iterable
        show = self.show_progress
        if show is None:
            env = os.environ.get("MLATLAS_PROGRESS", "")
            show = env == "1" if env in ("0", "1") else sys.stderr.isatty()
        disable = not show
        self._bar = tqdm(
            it, desc=f"{self.spec.name} {desc}".strip(), total=total, disable=disable, leave=False
        )
        return self._bar

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Append one line to metrics.jsonl and show the values on the progress bar."""
        if self.journal is not None and self.journal.replaying:
            return  # a resumed run replays up to its checkpoint: those lines are in the file
        if self.writes:
            row = {"step": step, **_jsonable(metrics), "time_s": round(self.elapsed, 3)}
            append_jsonl(self._metrics_file, row)
        if self._bar is not None and not self._bar.disable:
            shown = {k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float))}
            self._bar.set_postfix(shown, refresh=False)

    def metric(self, name: str, value: Any) -> None:
        """A summary number for result.json (final accuracy, steps to target, ...)."""
        self.metrics[name] = _jsonable(value)

    def table(self, name: str, rows: list[dict[str, Any]], note: str = "") -> None:
        if not rows:
            raise LabError(f"table {name!r} has no rows")
        columns = list(rows[0])
        self.tables[name] = {"columns": columns, "rows": _jsonable(rows), "note": note}

    def figure(self, name: str, fig: Any, caption: str = "") -> None:
        if self.writes:
            names = [p.name for p in save_figure(fig, self.dir / name)]
        else:
            names = [f"{name}.png", f"{name}.svg"]  # what rank 0 writes
        self.figures[name] = {"files": names, "caption": caption}

    def note(self, text: str) -> None:
        """A sentence for the reader of the result (which engine ran, what was skipped, ...)."""
        self.notes.append(text)

    def dataset(self, record: dict[str, Any]) -> None:
        """Record a dataset the lab used (core.data returns these records)."""
        if record not in self.datasets:
            self.datasets.append(_jsonable(record))

    def _insight(self, insight: str | None, statement: str) -> str:
        if insight is None:
            if len(self.spec.insights) != 1:
                raise LabError(
                    f"lab {self.spec.name} measures {len(self.spec.insights)} insights; "
                    f"name one of {list(self.spec.insights)} for claim {statement!r}"
                )
            insight = self.spec.insights[0]
        insight = _match_insight(self.topic, insight)
        if insight not in self.spec.insights:
            raise LabError(f"insight {insight!r} is not declared by lab {self.spec.name}")
        return insight

    def claim(
        self,
        statement: str,
        *,
        quantity: str,
        direction: str,
        margin: float | tuple[float, float],
        paired: bool = False,
        log: bool = False,
        censor_at: float | None = None,
        on_failure: float | None = None,
        unit: str = "seed",
        insight: str | None = None,
    ) -> Experiment:
        """State an experimental claim before measuring; feed it with ``.add(seed_id, ...)``.

        quantity: what one sample is (for a paired claim, what a and b are; the test is on
        a - b, or log10(a / b) when ``log``). direction: ``">"``, ``"<"`` or ``"within"``
        (margin = (lo, hi)). censor_at: the budget of a time-to-target quantity (``inf`` =
        never reached). on_failure: the value a NaN (diverged) sample takes; by default failed
        samples leave the test and are counted. See `mlatlas.core.claims` for the rule.
        """
        try:
            c = Experiment(
                statement,
                self._insight(insight, statement),
                quantity,
                direction,
                margin,
                paired=paired,
                log=log,
                censor_at=censor_at,
                on_failure=on_failure,
                unit=unit,
            )
        except ClaimError as exc:
            raise LabError(str(exc)) from None
        self.claims.append(c)
        return c

    def check(
        self,
        statement: str,
        value: float,
        *,
        direction: str,
        bound: float,
        quantity: str = "",
        insight: str | None = None,
    ) -> Check:
        """An exact or by-construction result (equivalence, closed form): value vs bound."""
        c = Check(statement, self._insight(insight, statement), quantity, value, direction, bound)
        self.claims.append(c)
        return c

    def decided_claims(self) -> list[dict[str, Any]]:
        """Every claim with its estimate, interval and verdict, decided by the core."""
        try:
            return decide_lab(self.claims)
        except ClaimError as exc:
            raise LabError(str(exc)) from None

    # randomness --------------------------------------------------------------------
    def replicates(self, n: int, desc: str = "seeds", first: int = 0) -> Iterator[Replicate]:
        """`n` replicates (ids first..first+n-1, seeds derived from the run seed), with a
        progress bar. ``first`` > 0 gives fresh replicates after a pilot: a claim restated on
        what ids 0..first-1 showed is decided on replicates that pilot never saw.

        Before each is yielded the global generators are seeded with its seed, so module
        initialisation inside the loop is reproducible; use ``rep.rng(key)``,
        ``rep.generator(key)`` and ``rep.seed_torch(key)`` for streams per purpose.
        """
        if n < 1:
            raise LabError("replicates(n) needs n >= 1")
        if first < 0:
            raise LabError("replicates(first=...) must be >= 0")
        for i in self.progress(range(first, first + n), desc=desc):
            rep = replicate(self.seed, i)
            seed_global(rep.seed)
            yield rep

    def generator(self, *keys: object, device: str | torch.device | None = None) -> torch.Generator:
        """A torch.Generator derived from the run seed and `keys` (work outside replicates), on
        the lab's device unless `device` says otherwise."""
        return torch_generator(self.seed, "lab", *keys, device=device)

    def seed_torch(self, *keys: object) -> None:
        """Seed the global generators from the run seed and `keys` (for work outside
        replicates, e.g. one model trained once)."""
        seed_global(derive_seed(self.seed, *keys))

    def checkpoint_path(self, name: str) -> Path:
        """Where a lab saves a checkpoint: under the run folder, or, on a data-parallel rank
        that writes no file, in a scratch folder the runner removes when the lab ends."""
        if self.writes:
            return self.dir / "checkpoints" / name
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="mlatlas-rank-"))
        return self._scratch / name

    def discard_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # bookkeeping -------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _write_json(self, name: str, obj: Any) -> None:
        if self.writes:
            atomic_write_json(self.dir / name, _jsonable(obj))
