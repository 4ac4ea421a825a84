"""The CLI never shows a traceback for a user's mistake.

Random argument lists go to `mlatlas.cli.main` in-process: unknown topics, labs and scales,
--set keys and values of the wrong type, bad paths, an --out that is a file, a locked folder or
a full disk, numbers out of range, random unicode, empty strings, repeated options. Each case
ends with exit 0, or exit 2 and exactly one line on stderr that starts ``mlatlas: error:``.

No lab trains: `run_lab` and `resume_run` are replaced by fakes that do what the real ones
check before training (scale, device, the run folder, and the lab's own ``ctx.config`` with
the overrides, which is where --set is validated) and then stop.
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlatlas.cli as cli
import mlatlas.report
from mlatlas.core.lab import SCALES, ConfigError, Lab, LabSpec, PerScale
from mlatlas.core.record import RunRecord
from mlatlas.core.runner import ResumeError, discover, get_lab
from mlatlas.core.runtime import DEVICES, pick_device
from mlatlas.guide import TOPICS, TRACKS, get_topic
from mlatlas.report import serve

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CASES: dict[str, int] = {}  # argument lists run by each fuzz test, for the count at the end


# the lab settings a real run would validate --set against -----------------------------


class _Asked(Exception):
    """Raised by the probe at the lab's first ``ctx.config`` (settings) or work (None)."""

    def __init__(self, settings: dict[str, Any] | None) -> None:
        self.settings = settings


class _Probe(Lab):
    """A lab context that stops the lab at its ``ctx.config`` call, before any work."""

    def config(self, **settings: Any) -> Any:
        raise _Asked(settings)

    def progress(self, *args: Any, **kwargs: Any) -> Any:
        raise _Asked(None)

    def replicates(self, *args: Any, **kwargs: Any) -> Any:
        raise _Asked(None)


_SETTINGS: dict[tuple[str, str, str], dict[str, Any] | None] = {}


def lab_settings(spec: LabSpec, scale: str, scratch: Path) -> dict[str, Any] | None:
    """The settings `spec` passes to ``ctx.config`` at `scale` (None: it asks for none), read
    by running the lab up to that call."""
    key = (spec.topic, spec.name, scale)
    if key not in _SETTINGS:
        probe = _Probe(spec, scale, 0, torch.device("cpu"), scratch, {}, False)
        try:
            spec.fn(probe)
            _SETTINGS[key] = None
        except _Asked as asked:
            _SETTINGS[key] = asked.settings
    return _SETTINGS[key]


# the world the commands run in -------------------------------------------------------


@dataclass
class World:
    """A working folder with the awkward places a user can point the CLI at."""

    root: Path
    file: Path  # a plain file
    locked: Path  # chmod 000
    full: Path  # every write under it fails as on a full disk
    runs: Path  # holds a killed run and a complete one
    killed: Path
    complete: Path
    site: Path  # a built site
    chmod_blocks: bool  # False when running as root, where chmod 000 stops nothing

    def paths(self) -> list[str]:
        """Awkward and ordinary paths, relative and absolute, all inside the world."""
        return [
            str(self.file),
            str(self.file / "below"),
            str(self.locked),
            str(self.locked / "below"),
            str(self.full),
            str(self.runs),
            str(self.killed),
            str(self.complete),
            str(self.site),
            str(self.root / "new" / "folder"),
            str(self.root / "nowhere"),
            "x" * 300,  # longer than a file name may be
            f"{'d' * 200}/{'e' * 200}",
            "",
            "runs",
            "a file.txt",
            "ünï cödé",
        ]

    def inside(self, path: str | Path) -> Path:
        """`path`, after checking that a fake is about to write inside the world only."""
        p = Path(path).resolve()
        assert p.is_relative_to(self.root), f"a fuzzed case would write outside: {path}"
        return p

    def touch(self, path: str | Path) -> Path:
        """What a real run does first: make its folder. Raises the OSError the machine would."""
        p = self.inside(path)
        if not self.chmod_blocks and p.is_relative_to(self.locked):  # root: play the kernel
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        p.mkdir(parents=True, exist_ok=True)
        if p.is_relative_to(self.full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return p


def _write_run(d: Path, spec: LabSpec, result: bool) -> Path:
    d.mkdir(parents=True)
    info = {"topic": spec.topic, "lab": spec.name, "scale": "smoke", "seed": 0}
    info |= {"device": "cpu", "overrides": {}, "started_at": "2025-01-01T00:00:00+00:00"}
    (d / "run.json").write_text(json.dumps(info))
    if result:
        (d / "result.json").write_text(json.dumps(_record(spec, "smoke", 0, d).to_dict()))
    return d


def _record(spec: LabSpec, scale: str, seed: int, d: Path) -> RunRecord:
    t = get_topic(spec.topic)
    return RunRecord(
        topic=spec.topic,
        topic_number=t.number,
        lab=spec.name,
        title=spec.title,
        insights=list(spec.insights),
        scale=scale,
        seed=seed,
        device="cpu",
        status="ok",
        dir=d,
    )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The world, with the CLI's runner replaced by fakes and `serve` stopping at once."""
    root = tmp_path.resolve()
    monkeypatch.chdir(root)
    (root / "file.txt").write_text("not a folder")
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        (locked / "probe").touch()
        chmod_blocks = False
    except PermissionError:
        chmod_blocks = True
    spec = get_lab("backprop", "gradient_flow")
    runs = root / "runs"
    w = World(
        root=root,
        file=root / "file.txt",
        locked=locked,
        full=root / "full",
        runs=runs,
        killed=_write_run(runs / "backprop" / "gradient_flow" / "killed", spec, False),
        complete=_write_run(runs / "backprop" / "gradient_flow" / "done", spec, True),
        site=root / "site",
        chmod_blocks=chmod_blocks,
    )
    w.site.mkdir()
    (w.site / "index.html").write_text("<!DOCTYPE html>")
    _install_fakes(w, monkeypatch)
    yield w
    locked.chmod(0o755)


def _install_fakes(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    scratch = w.root / "scratch"
    scratch.mkdir()

    def run_lab(
        spec: LabSpec,
        scale: str = "default",
        seed: int = 0,
        device: str = "auto",
        out: str | Path = "runs",
        overrides: dict[str, Any] | None = None,
        show_progress: bool | None = None,
    ) -> RunRecord:
        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}")
        dev = pick_device(device)
        d = w.touch(Path(out) / spec.topic / spec.name / f"run-{next(counter)}")
        ctx = Lab(spec, scale, seed, dev, d, dict(overrides or {}), False)
        asked = lab_settings(spec, scale, scratch)
        if asked is None and overrides:
            raise ConfigError(f"lab {spec.name} takes no settings; drop --set")
        if asked is not None:
            ctx.config(**asked)  # the real validation of --set, and config.json written
        return _record(spec, scale, seed, d)

    def resume_run(run_dir: str | Path, show_progress: bool | None = None) -> RunRecord:
        d = Path(run_dir)
        if not w.chmod_blocks and d.resolve().is_relative_to(w.locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(d / "run.json"))
        if not d.is_dir() or not (d / "run.json").is_file():
            raise ResumeError(f"{d} is not a run folder")
        if (d / "result.json").exists():
            raise ResumeError(f"{d} is complete (it has result.json): nothing to resume")
        info = json.loads((d / "run.json").read_text())
        w.touch(d)
        return _record(get_lab(info["topic"], info["lab"]), info["scale"], info["seed"], d)

    def find_incomplete(
        out: str | Path, spec: LabSpec, scale: str, seed: int, overrides: dict | None
    ) -> Path | None:
        same = (spec.topic, spec.name, scale, seed, overrides or {})
        if Path(out).resolve() == w.runs and same == ("backprop", "gradient_flow", "smoke", 0, {}):
            return w.killed
        return None

    def build_site(runs_dir: str | Path = "runs", out: str | Path = "site") -> list[Path]:
        index = w.touch(out) / "index.html"
        index.write_text("<!DOCTYPE html>")
        return [index]

    def stop_at_once(server: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_lab", run_lab)
    monkeypatch.setattr(cli, "resume_run", resume_run)
    monkeypatch.setattr(cli, "find_incomplete", find_incomplete)
    monkeypatch.setattr(mlatlas.report, "build_site", build_site)
    monkeypatch.setattr(serve.SiteServer, "serve_forever", stop_at_once)


def check(argv: list[str]) -> tuple[int, str, str]:
    """Run `argv`; assert exit 0, or exit 2 with one ``mlatlas: error:`` line; no traceback."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    CASES[test] = CASES.get(test, 0) + 1
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text, (argv, text)
    assert code in (0, 2), (argv, code, text)
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mlatlas: error: "), (argv, lines)
    return code, out.getvalue(), err.getvalue()


# strategies ----------------------------------------------------------------------------

SPECS = [s for t in TOPICS for s in discover(t)]
COMMANDS = ["topics", "show", "path", "run", "resume", "verify", "runs", "datasets"]
COMMANDS += ["landscape", "report", "serve"]
OPTIONS = ["--scale", "--seed", "--device", "--out", "--set", "--resume", "--limit", "--topic"]
OPTIONS += ["--port", "--host", "--dir", "--runs", "-v", "--verbose", "-h", "--help", "--", "-"]

# argv never holds a NUL (exec cannot pass one) nor a lone surrogate other than the
# \udc80-\udcff that Python makes of undecodable bytes
unicode = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
argv_text = unicode | st.sampled_from(["\udcff", "a\udc80b", "\n", "\x1b[31mred", "\u2028"])
safe_text = argv_text.filter(lambda t: "/" not in t and t.strip(".") != "")
topics = st.sampled_from(
    [str(t.number) for t in TOPICS] + [t.slug for t in TOPICS] + ["attention", "0", "23", "-1"]
)
labs = st.sampled_from(sorted({s.name for s in SPECS}))
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " 1", "0x10", "1_000", "٣", "1e3", "--1", "+5", "9" * 5000]),
)


def _literal(depth: int = 2) -> st.SearchStrategy[str]:
    """Text for the value of a --set: numbers, strings, booleans, lists, sets, bytes, ..."""
    base = st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.floats().map(repr),
        st.sampled_from(["True", "false", "None", "...", "1j", "b'x'", "{1}", "{'a': 1}", "()"]),
        st.sampled_from(["nan", "inf", "-inf", "1e999", "abc", "[1, 'a']", "[[1]]", "'x'"]),
        st.sampled_from(["-" * 3000 + "1", "[" * 300 + "]" * 300, "(" * 50 + ")" * 50]),
        unicode,
    )
    if depth == 0:
        return base
    inner = _literal(depth - 1)
    return base | st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")


def _typed(default: Any, scale: str) -> st.SearchStrategy[str]:
    """Text for a --set value that has the type of the setting's `default` at `scale`."""
    if isinstance(default, PerScale):
        default = default.at(scale)
    if isinstance(default, bool):
        return st.sampled_from(["True", "False", "true", "false"])
    if isinstance(default, int):
        return st.integers(1, 10**6).map(str)
    if isinstance(default, float):
        return st.floats(1e-6, 10.0).map(repr) | st.integers(1, 9).map(str)
    if isinstance(default, str):
        return unicode
    if isinstance(default, (list, tuple)):
        return st.lists(st.integers(1, 9), min_size=1, max_size=3).map(str)
    return st.sampled_from(["None", "100"])


MISTAKES = ["topic", "lab", "scale", "device", "seed", "out", "key", "value", "form", "extra"]


@st.composite
def run_argv(draw: st.DrawFn, world: World) -> tuple[list[str], set[str]]:
    """`mlatlas run` with up to two mistakes (which, returned) in an otherwise good request:
    a bad topic, lab, scale, device, seed, folder, --set key, value or form, or a stray token.
    """
    bad = draw(st.sets(st.sampled_from(MISTAKES), max_size=2))
    spec = draw(st.sampled_from(SPECS))
    scale = draw(st.sampled_from(SCALES))

    def pick(mistake: str, good: st.SearchStrategy[str], wrong: st.SearchStrategy[str]) -> str:
        return draw(wrong if mistake in bad else good)

    number = str(get_topic(spec.topic).number)
    head = ["run", pick("topic", st.sampled_from([spec.topic, number]), topics | safe_text)]
    head.append(pick("lab", st.just(spec.name), labs | safe_text))
    groups = [
        ["--scale", pick("scale", st.just(scale), safe_text)],
        ["--device", pick("device", st.sampled_from(["auto", "cpu"]), safe_text)],
        ["--seed", pick("seed", st.integers(-(2**70), 2**70).map(str), numbers)],
        ["--out", pick("out", st.sampled_from(["runs", "o"]), st.sampled_from(world.paths()))],
        *draw(set_options(spec, scale, bad)),
    ]
    if draw(st.booleans()):
        groups.append(["--resume"])
    if "extra" in bad:
        groups.append(draw(st.lists(st.sampled_from(OPTIONS) | safe_text, min_size=1)))
    return head + [t for g in draw(st.permutations(groups)) for t in g], bad


@st.composite
def set_options(draw: st.DrawFn, spec: LabSpec, scale: str, bad: set[str]) -> list[list[str]]:
    """--set options for the lab's own keys with values of their type, but for the
    mistakes in `bad`: an unknown key, a value of any type, a malformed option."""
    known = lab_settings(spec, scale, Path.cwd()) or {}
    n = draw(st.integers(1 if bad & {"key", "value", "form"} else 0, 3))
    out = []
    for i in range(n):
        key = draw(st.sampled_from(sorted(known))) if known else "steps"
        value = draw(_typed(known.get(key), scale))
        if i == 0 and "key" in bad:
            key = draw(st.sampled_from(["steps", "x", "_", "1x", "a-b", ""]) | unicode)
        if i == 0 and "value" in bad:
            value = draw(_literal())
        text = f"{key}={value}"
        if i == 0 and "form" in bad:
            text = draw(st.sampled_from([key, f"={value}", f" {key} = {value}", f"{key}"]))
        out.append(["--set", text])
    return out


@st.composite
def path_argv(draw: st.DrawFn, world: World) -> list[str]:
    """Commands that read or write a folder, pointed at awkward ones."""
    p = st.sampled_from(world.paths())
    spec = get_lab("backprop", "gradient_flow")
    options = [
        ["run", "backprop", spec.name, "--scale", "smoke", "--out", draw(p)],
        ["run", "backprop", spec.name, "--scale", "smoke", "--resume", "--out", draw(p)],
        ["run", "1", "--scale", "smoke", "--seed", "0", "--out", draw(p), "--resume"],
        ["verify", "backprop", "--scale", "smoke", "--out", draw(p)],
        ["resume", draw(p | argv_text)],
        ["runs", "--out", draw(p | argv_text)],
        ["runs", "--out", draw(p), "--topic", draw(topics | argv_text)],
        ["show", draw(topics), "--out", draw(p | argv_text)],
        ["report", "--out", draw(p), "--runs", draw(p)],
        ["serve", "--dir", draw(p | argv_text), "--port", "0"],
    ]
    return draw(st.sampled_from(options))


@st.composite
def number_argv(draw: st.DrawFn, world: World) -> list[str]:
    """Numeric options out of range or not numbers at all."""
    n = draw(numbers)
    options = [
        ["runs", "--out", str(world.runs), "--limit", n],
        ["serve", "--dir", str(world.site), "--port", n],
        ["serve", "--dir", str(world.site), "--port", "0", "--host", draw(argv_text)],
        ["serve", "--dir", str(world.site), "--port", "0", "--host", "::1"],
        ["run", "backprop", "gradient_flow", "--scale", "smoke", "--seed", n, "--out", "o"],
    ]
    return draw(st.sampled_from(options))


@st.composite
def any_argv(draw: st.DrawFn, world: World) -> list[str]:
    """Anything at all: commands, options and values in any order, repeated or missing."""
    token = st.one_of(
        st.sampled_from(COMMANDS),
        st.sampled_from(OPTIONS),
        topics,
        labs,
        st.sampled_from([*SCALES, *DEVICES, *(t.slug for t in TRACKS)]),
        st.sampled_from(world.paths()),
        numbers,
        safe_text,
    )
    command = st.sampled_from(COMMANDS)
    first = st.one_of(command, command, command, token)  # mostly a command
    return [draw(first), *draw(st.lists(token, max_size=7))]


# the fuzz tests --------------------------------------------------------------------------


@settings(FUZZ, max_examples=500)
@given(data=st.data())
def test_fuzz_any_arguments(world, data):
    check(data.draw(any_argv(world)))


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_fuzz_run_options_and_settings(world, data):
    argv, mistakes = data.draw(run_argv(world))
    code, _, err = check(argv)
    assert mistakes or code == 0, (argv, err)  # a good request runs


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_fuzz_awkward_paths(world, data):
    check(data.draw(path_argv(world)))


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_fuzz_numbers_and_hosts(world, data):
    check(data.draw(number_argv(world)))


def test_fuzzed_at_least_500_cases():
    """The four fuzz tests above ran at least 500 argument lists between them."""
    fuzzed = {k: v for k, v in CASES.items() if "test_fuzz_" in k}
    if len(fuzzed) < 4:
        pytest.skip("counts only when the four fuzz tests run")
    print(f"\nfuzzed argument lists: {fuzzed}, {sum(fuzzed.values())} in all")
    assert sum(fuzzed.values()) >= 500


# the cases the fuzzer must meet, spelled out ----------------------------------------------


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_exits_0(world, command):
    code, out, err = check([command, "--help"] if command else ["--help"])
    assert code == 0 and "usage: mlatlas" in out and err == ""


def test_unknown_setting_names_the_valid_ones(world):
    code, _, err = check(["run", "backprop", "gradient_flow", "--set", "nope=1", "--out", "o"])
    assert code == 2
    assert "unknown setting(s) nope" in err and "valid settings: batch, depth, seeds, width" in err


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("depth=abc", "expected a value of type int"),
        ("depth=1.5", "expected a value of type int"),
        ("depth=True", "expected a value of type int"),
        ("lr=[0.1]", "expected a value of type float"),
        ("lr=abc", "expected a value of type float"),
        ("hidden=abc", "expected a value of type list"),
    ],
)
def test_wrong_type_names_the_expected_type(world, setting, expected):
    lab = "engine_equals_torch" if setting.split("=")[0] in ("lr", "hidden") else "gradient_flow"
    code, _, err = check(["run", "backprop", lab, "--set", setting, "--out", "o"])
    assert code == 2 and f"bad --set {setting.split('=')[0]}=" in err and expected in err


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("{1}", "not a set"),
        ("b'x'", "not a bytes"),
        ("1j", "not a complex"),
        ("...", "not a ellipsis"),
        ("-" * 3000 + "1", "nested too deeply"),
    ],
)
def test_values_a_run_cannot_record_are_refused(world, value, needle):
    """n_train defaults to None at smoke scale, so its type gives no check: without this one
    a set would pass to the lab and fail there, writing config.json."""
    argv = ["run", "cnn", "hierarchical_features", "--scale", "smoke", "--set"]
    code, _, err = check([*argv, f"n_train={value}"])
    assert code == 2 and needle in err


def test_out_that_is_a_file_is_one_line(world):
    code, _, err = check(["run", "backprop", "gradient_flow", "--out", str(world.file)])
    assert code == 2 and err.startswith(f"mlatlas: error: cannot write to {world.file}")
    assert "Not a directory" in err


def test_unwritable_out_is_one_line(world):
    code, _, err = check(["run", "backprop", "gradient_flow", "--out", str(world.locked)])
    assert code == 2 and err.startswith(f"mlatlas: error: cannot write to {world.locked}")
    assert err.rstrip().endswith(": Permission denied")


def test_full_disk_is_one_line(world):
    code, _, err = check(["run", "backprop", "gradient_flow", "--out", str(world.full)])
    assert (
        code == 2
        and err == f"mlatlas: error: cannot write to {world.full}: No space left on device\n"
    )


def test_report_refuses_to_replace_a_folder_that_is_not_a_site(world):
    code, _, err = check(["report", "--out", str(world.root)])
    assert code == 2 and "holds the runs folder" in err
    code, _, err = check(["report", "--out", str(world.runs / "backprop"), "--runs", "elsewhere"])
    assert code == 2 and "holds no built site" in err
    assert (world.killed / "run.json").is_file()


def test_control_characters_never_break_the_line(world):
    code, _, err = check(["show", "a\nb\x1b[2Jc\u2028d"])
    assert code == 2 and "\\x1b" in err
    code, _, err = check(["runs", "--limit", "1", "extra\nline"])
    assert code == 2 and "extra line" in err
