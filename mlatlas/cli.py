"""The `mlatlas` command: navigate the guide, run its labs, verify its claims."""

from __future__ import annotations

import argparse
import errno
import inspect
import ipaddress
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from mlatlas.core import distributed
from mlatlas.core.checkpoint import CheckpointError
from mlatlas.core.claims import summary_line
from mlatlas.core.data import REGISTRY, is_available
from mlatlas.core.data.registry import DataError
from mlatlas.core.lab import SCALES, ConfigError, LabSpec, parse_override
from mlatlas.core.record import RunRecord
from mlatlas.core.runner import (
    discover,
    find_incomplete,
    get_lab,
    has_code,
    latest_runs,
    list_runs,
    resume_run,
    run_lab,
)
from mlatlas.core.runtime import DEVICES, DeviceError, pick_device
from mlatlas.guide import (
    LANDSCAPE,
    SECTIONS,
    TOPICS,
    TRACKS,
    TRENDS,
    UnknownNameError,
    get_topic,
    path,
    topics_in,
)


class UsageError(Exception):
    """A request the command cannot carry out: a folder it cannot write, a port it cannot use."""


# a user's mistake or the machine's state, never a bug: one line on stderr, exit 2
USER_ERRORS = (UnknownNameError, ConfigError, DeviceError, DataError, CheckpointError, UsageError)

# what a file operation can meet that is the machine's state, not a bug: no permission, a
# full disk, a file where a folder should be (or the reverse), a name the file system refuses
_FILE_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)


def one_line(text: str) -> str:
    """`text` as a single printable line: line breaks become spaces, other control
    characters (a terminal escape in a user's argument, say) are shown escaped."""
    flat = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in flat
    )


def _fail(message: str) -> None:
    print(f"mlatlas: error: {one_line(message)}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        _fail(message)
        self.exit(2)


def _count(text: str) -> int:
    """An argparse type: an integer >= 0."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {n}")
    return n


def _positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {n}")
    return n


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0 picks a free one)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return n


def _host(text: str) -> str:
    """An argparse type: an IP address to listen on (or ``localhost``); no name lookups."""
    if text == "localhost":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IP address such as 127.0.0.1 or 0.0.0.0, got {text!r}"
        ) from None


@contextmanager
def _file_errors(where: str | Path, action: str = "write to") -> Iterator[None]:
    """Turn a file operation that the machine refuses (permission, full disk, a file in the
    way, a name too long, a `where` that cannot be made because a folder above it does not
    exist and cannot be created) into a one-line user error naming the file; any other error
    is a bug and propagates."""
    try:
        yield
    except DataError:
        raise
    except OSError as exc:
        if _missing_ancestor(exc, where):  # e.g. --out under a folder that cannot hold one
            verb = "create" if action == "write to" else action
            raise UsageError(f"cannot {verb} {where}: {exc.strerror}") from None
        if exc.errno not in _FILE_ERRNOS:
            raise
        target = exc.filename if exc.filename is not None else where
        raise UsageError(f"cannot {action} {target}: {exc.strerror}") from None


def _missing_ancestor(exc: OSError, where: str | Path) -> bool:
    """Whether `exc` says that `where` itself, or a folder above it, does not exist and
    cannot be made: the user's path, not a file the code expected to find."""
    name = exc.filename
    if exc.errno != errno.ENOENT or not isinstance(name, (str, os.PathLike)):
        return False
    return Path(where).is_relative_to(Path(name))


def _width() -> int:
    return min(shutil.get_terminal_size((100, 24)).columns, 120)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _estimate(c: dict) -> str:
    """Estimate with its interval, e.g. ``0.81 [0.74, 0.88]``."""
    text = _fmt(c.get("estimate"))
    if c.get("interval"):
        text += f" [{_fmt(c['interval'][0])}, {_fmt(c['interval'][1])}]"
    return text


def _verdict(c: dict) -> str:
    return c["verdict"].upper() if c["verdict"] in ("refuted", "fail") else c["verdict"]


def _claims_table(rows: list[dict]) -> str:
    """Claims as a fixed-width table: topic, lab, claim (wrapped), kind, estimate, n, verdict."""
    if not rows:
        return "(no claims)"
    w_topic = max(5, *(len(r["topic"]) for r in rows))
    w_lab = max(3, *(len(r["lab"]) for r in rows))
    w_val = 32
    w_claim = max(30, _width() - w_topic - w_lab - w_val - 36)
    head = (
        f"{'topic':<{w_topic}}  {'lab':<{w_lab}}  {'claim':<{w_claim}}  {'kind':<10}  "
        f"{'estimate [95% interval]':<{w_val}}  {'n':>3}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        c = r["claim"]
        wrapped = textwrap.wrap(c["statement"], w_claim) or [""]
        lines.append(
            f"{r['topic']:<{w_topic}}  {r['lab']:<{w_lab}}  {wrapped[0]:<{w_claim}}  "
            f"{c['kind']:<10}  {_estimate(c):<{w_val}}  {c.get('n', 1):>3}  {_verdict(c)}"
        )
        for extra in wrapped[1:]:
            lines.append(f"{'':<{w_topic}}  {'':<{w_lab}}  {extra}")
    return "\n".join(lines)


# commands -----------------------------------------------------------------------------


def cmd_topics(args: argparse.Namespace) -> int:
    for section in SECTIONS:
        print(f"\n{section.number}. {section.title}")
        for t in topics_in(section.slug):
            labs = discover(t)
            status = f"{len(labs)} labs" if labs else ("code" if has_code(t) else "planned")
            print(f"  {t.number:>2}  {t.slug:<18} {t.title:<44} [{status}]")
            if args.verbose:
                print(f"      {t.tagline}")
    print("\nmlatlas show TOPIC for one topic; mlatlas path TRACK for a learning track.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    t = get_topic(args.topic)
    w = _width()
    print(f"{t.number}. {t.title}  ({t.slug}, section: {t.section})")
    print(f"   {t.tagline}\n")
    print(textwrap.fill(t.description, w))
    print("\nKey insights: " + "; ".join(t.insights))
    print("Prerequisites:")
    for p in t.prerequisites:
        target = f"topic {get_topic(p.topic).number} {p.topic}" if p.topic else "background"
        print(f"  - {p.as_written}  -> {target}")
    needed_by = [u.slug for u in TOPICS if t.slug in u.topic_prerequisites]
    if needed_by:
        print(f"Needed by: {', '.join(needed_by)}")
    labs = discover(t)
    if not labs:
        print("\nLabs: none yet (the topic's code is planned).")
        return 0
    with _file_errors(args.out, "read"):
        latest = latest_runs(args.out)
    print("\nLabs:")
    for spec in labs:
        print(f"  {spec.name}: {spec.title}")
        print(f"      insights: {', '.join(spec.insights)}")
        run = latest.get((t.slug, spec.name))
        if run and run.ok:
            print(f"      last run: {run.scale} scale, seed {run.seed}, {run.dir}")
            for c in run.claims:
                line = f"{c['statement']} -> {_estimate(c)}, n = {c['n']} ({c['verdict']})"
                print(
                    textwrap.fill(
                        line, w, initial_indent="      claim: ", subsequent_indent=" " * 13
                    )
                )
            continue
        for c in _claim_statements(spec.fn):
            print(textwrap.fill(c, w, initial_indent="      claim: ", subsequent_indent=" " * 13))
    pkg = Path(inspect.getfile(sys.modules[t.module]))
    print("\nSource files:")
    for f in sorted(pkg.parent.glob("*.py")):
        print(f"  {f}")
    return 0


def _claim_statements(fn: object) -> list[str]:
    """The claim sentences a lab can make, read from its source (f-strings shown as written)."""
    import ast

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("claim", "check")
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                out.append(str(arg.value))
            elif isinstance(arg, ast.JoinedStr):
                out.append(
                    "".join(
                        str(v.value)
                        if isinstance(v, ast.Constant)
                        else "{" + ast.unparse(v.value) + "}"
                        for v in arg.values
                    )
                )
    return out


def cmd_path(args: argparse.Namespace) -> int:
    p = path(args.track)
    print(f"{p.track.title}: {p.track.focus}")
    if p.track.note:
        print(
            textwrap.fill(p.track.note, _width(), initial_indent="(", subsequent_indent=" ") + ")"
        )
    print()
    for i, step in enumerate(p.steps, 1):
        mark = "  + prerequisite" if step.added else ""
        needs = [get_topic(s).slug for s in step.topic.topic_prerequisites]
        after = f"  (after {', '.join(needs)})" if needs else ""
        print(f"{i:>2}. [{step.topic.number:>2}] {step.topic.title}{mark}{after}")
    print(f"\nBackground subjects: {', '.join(p.subjects)}")
    return 0


_VALUE_TYPES = (type(None), bool, int, float, str, list, tuple, dict)


def _plain(value: Any) -> bool:
    """Whether a --set value is one a run can record: None, bool, number, str, or lists and
    dicts of them (not a set, bytes, a complex number or ``...``)."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return isinstance(value, _VALUE_TYPES)


def _override(text: str) -> tuple[str, Any]:
    """One ``--set key=value``, with values the run folder can hold."""
    try:
        key, value = parse_override(text)
    except (RecursionError, MemoryError):  # e.g. thousands of nested brackets
        raise ConfigError(f"bad --set {text[:40]!r}...: the value is nested too deeply") from None
    if not _plain(value):
        raise ConfigError(
            f"bad --set {text!r}: a value is a number, string, True/False, None or a list, "
            f"not a {type(value).__name__}"
        )
    return key, value


def _overrides(pairs: list[str]) -> dict:
    return dict(_override(p) for p in pairs)


def _report_run(r: RunRecord) -> None:
    mem = r.memory.get("peak_rss_mb")
    print(f"\n== {r.topic} / {r.lab}: {r.title}")
    print(
        f"   {r.scale} scale, seed {r.seed}, {r.device}, {r.wall_time_s:.1f} s, "
        f"peak RSS {mem} MB -> {r.dir}"
    )
    if not r.ok:
        last = (r.error or "").strip().splitlines()[-1:]
        print(f"   ERROR: {last[0] if last else 'unknown'}")
        return
    print(f"   {summary_line(r.claims)}")
    for note in r.notes:
        print(textwrap.fill(note, _width(), initial_indent="   note: ", subsequent_indent="   "))


def _start(spec: LabSpec, args: argparse.Namespace, overrides: dict) -> RunRecord:
    """Run one lab; with --resume, first finish its newest killed run of the same request."""
    with _file_errors(args.out):
        if getattr(args, "resume", False):
            found = find_incomplete(args.out, spec, args.scale, args.seed, overrides)
            name = f"{spec.topic} / {spec.name}"
            if found is not None:
                print(f"\n{name}: resuming the incomplete run in {found}")
                return resume_run(found)
            print(f"\n{name}: no incomplete run to resume; starting a new run")
        return run_lab(
            spec,
            scale=args.scale,
            seed=args.seed,
            device=args.device,
            out=args.out,
            overrides=overrides,
        )


def _run_many(specs: list[LabSpec], args: argparse.Namespace, overrides: dict) -> int:
    return _report_all(_start(spec, args, overrides) for spec in specs)


def _report_all(records: Iterable[RunRecord]) -> int:
    """Print each run as it finishes, then every claim; exit status 1 if a lab failed."""
    rows, errors, done = [], 0, []
    for res in records:
        _report_run(res)
        errors += not res.ok
        done.append(res)
        rows += [{"topic": res.topic, "lab": res.lab, "claim": c} for c in res.claims]
    print("\n" + _claims_table(rows))
    if len(done) > 1:
        print("\n" + _time_summary(done))
    print(f"\n{summary_line(r['claim'] for r in rows)}; {errors} lab(s) failed.")
    return 1 if errors else 0


# What one topic may cost on a 2-core CPU, per scale (DESIGN.md); `full` is for a GPU.
TOPIC_BUDGET_S = {"smoke": 30.0, "default": 600.0}


def _time_summary(records: list[RunRecord]) -> str:
    """The cost of what just ran: total wall time, each topic's time against its budget at
    that scale, and the ten slowest labs, so a lab that grew slow is seen the day it did."""
    topics: dict[str, float] = {}
    for r in records:
        topics[r.topic] = topics.get(r.topic, 0.0) + r.wall_time_s
    total = sum(topics.values())
    lines = [f"wall time: {total:.0f} s in all ({total / 60:.1f} min) for {len(records)} labs"]
    scales = {r.scale for r in records}
    budget = TOPIC_BUDGET_S.get(scales.pop()) if len(scales) == 1 else None
    for t, s in topics.items():
        over = "  OVER BUDGET" if budget is not None and s > budget else ""
        limit = f" (budget {budget:.0f} s)" if budget is not None else ""
        lines.append(f"  {t:<22} {s:8.1f} s{limit}{over}")
    slow = sorted(records, key=lambda r: r.wall_time_s, reverse=True)[:10]
    lines.append(f"slowest {len(slow)} labs:")
    lines += [f"  {r.wall_time_s:8.1f} s  {r.topic} / {r.lab}" for r in slow]
    return "\n".join(lines)


def _parallel_launch(args: argparse.Namespace) -> int | None:
    """With ``--nproc N`` (N > 1) outside torchrun: run this same command under torchrun on N
    processes and return its exit status. None: run here (one process, or already a torchrun
    worker)."""
    if args.resume and (args.nproc > 1 or distributed.launched()):
        raise ConfigError("--resume runs in one process: drop --nproc (and torchrun)")
    if distributed.launched():
        if args.nproc > 1 and args.nproc != distributed.world_size():
            raise ConfigError(
                f"--nproc {args.nproc} under torchrun with {distributed.world_size()} "
                "processes: drop --nproc, torchrun sets the number"
            )
        return None
    if args.nproc == 1:
        return None
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        "-m",
        "mlatlas",
        *_without_nproc(args.argv),
    ]
    sys.stdout.flush()
    return subprocess.run(cmd, check=False).returncode


def _without_nproc(argv: list[str]) -> list[str]:
    """`argv` less its --nproc option (also abbreviated, or as --nproc=N): the workers get
    their number from torchrun, and torchrun would read --nproc as its own option."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if len(name) >= 3 and "--nproc".startswith(name):
            skip = "=" not in a
            continue
        out.append(a)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    t = get_topic(args.topic)
    specs = [get_lab(t.slug, args.lab)] if args.lab else discover(t)
    if not specs:
        raise UnknownNameError(f"topic {t.slug} has no labs yet")
    overrides = _overrides(args.set)
    if overrides and len(specs) > 1:
        raise ConfigError("--set applies to one lab: name it, e.g. mlatlas run TOPIC LAB --set k=v")
    code = _parallel_launch(args)
    return _run_many(specs, args, overrides) if code is None else code


def cmd_verify(args: argparse.Namespace) -> int:
    topics = [get_topic(n) for n in args.topics] if args.topics else list(TOPICS)
    specs = [s for t in topics for s in discover(t)]
    if not specs:
        print("no labs to run for the chosen topics")
        return 0
    code = _parallel_launch(args)
    return _run_many(specs, args, {}) if code is None else code


def cmd_resume(args: argparse.Namespace) -> int:
    with _file_errors(args.run_dir, "use"):
        record = resume_run(Path(args.run_dir))
    return _report_all([record])


def _run_state(r: RunRecord) -> tuple[str, str, str]:
    """The S/R/I, checks and time cells of `mlatlas runs` for one run."""
    if r.status in ("incomplete", "running"):  # not a result: how far it got instead
        return f"{r.status} ({r.progress})" if r.progress else r.status, "", "-"
    k = r.counts()
    if not r.ok:
        return "error", "", f"{r.wall_time_s:.1f}s"
    sri = f"{k['supported']}/{k['refuted']}/{k['inconclusive']}"
    return sri, f"{k['checks_passed']}/{k['checks']}", f"{r.wall_time_s:.1f}s"


def cmd_calibrate(args: argparse.Namespace) -> int:
    """The skewness the latest runs' claims tested, pooled, and the rule's false-support rate
    under noise of that skewness (`mlatlas.core.calibration`)."""
    import numpy as np

    from mlatlas.core import calibration as cal

    with _file_errors(args.runs, "read"):
        runs = latest_runs(args.runs, args.scale)
    records = [dict(c, lab=f"{r.topic}/{r.lab}") for r in runs.values() if r.ok for c in r.claims]
    rows = cal.skew_table(records)
    if not rows:
        print(f"no experiment with 3 or more samples in the {args.scale} runs under {args.runs}")
        return 0
    print(f"{'lab':<34} {'n':>3} {'dir':>6} {'paired at 0':>11} {'aligned skew':>12}  claim")
    for row in rows:
        print(
            f"{row['lab']:<34} {row['n']:>3} {row['direction']:>6} "
            f"{'yes' if row['paired_at_zero'] else 'no':>11} {row['aligned_skewness']:>+12.2f}  "
            f"{textwrap.shorten(row['statement'], 60)}"
        )
    groups = {  # each group under the test that decides it
        "paired at margin 0 (Student t)": [r for r in rows if r["paired_at_zero"]],
        "one-sample or non-zero margin (skew-guarded t)": [
            r for r in rows if not r["paired_at_zero"]
        ],
    }
    print(
        f"\nfalse 'supported' of the rule under Gamma noise of the pooled skewness "
        f"({args.trials} null experiments; target <= 0.05):"
    )
    for label, group in groups.items():
        if len(group) < 3:
            continue
        est = cal.pooled_skewness((r["n"], r["aligned_skewness"]) for r in group)
        n = int(np.median([r["n"] for r in group]))
        skews = [est["skewness"], *est.get("interval", ())[1:]]
        guard = "guarded" in label
        rates = [
            cal.false_support(cal.gamma_noise(g), n, "<", trials=args.trials, guard=guard)
            for g in skews
        ]
        upper = (
            f"; at the interval's upper end {skews[1]:+.2f}: {rates[1]:.3f}"
            if len(skews) > 1
            else ""
        )
        interval = est.get("interval")
        shown = f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else ""
        print(
            f"  {label}: {est['claims']} parts, mean aligned sample skewness "
            f"{est['mean_aligned_skewness']:+.2f} -> noise skewness {est['skewness']:+.2f}{shown}; "
            f"at n = {n}: {rates[0]:.3f}{upper}"
        )
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    """Replicates each claim of a pilot run needs for 80% power (`mlatlas.core.power`)."""
    from mlatlas.core.power import TARGET_POWER, pilot_table

    with _file_errors(args.run_dir, "read"):
        record = RunRecord.load(Path(args.run_dir))
    rows = pilot_table(record.claims)
    if not rows:
        print(f"{args.run_dir}: no experiment to size")
        return 0
    print(
        f"{record.topic}/{record.lab} (pilot seed {record.seed}, {record.scale}): replicates for "
        f"{TARGET_POWER:.0%} power after Holm over {len(rows)} experiment(s)"
    )
    for row in rows:
        need = row["replicates_needed"]
        effect = "-" if row["effect"] is None else f"{row['effect']:+.3g}"
        sd = "-" if row["sd"] is None else f"{row['sd']:.3g}"
        print(
            f"  {'never' if need is None else need:>5}  (pilot n {row['n_pilot']}, effect beyond "
            f"margin {effect}, sd {sd})  {textwrap.shorten(row['statement'], 70)}"
        )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    with _file_errors(args.out, "read"):
        runs = list_runs(args.out, include_incomplete=True)
    if args.topic:
        slug = get_topic(args.topic).slug
        runs = [r for r in runs if r.topic == slug]
    if not runs:
        print(f"no runs under {args.out}")
        return 0
    shown = [(r, *_run_state(r)) for r in runs[: args.limit]]
    w = max([8, *(len(cell) for _, cell, _, _ in shown)])
    print(
        f"{'started':<26} {'topic':<14} {'lab':<26} {'scale':<8} {'S/R/I':<{w}} {'checks':<7} "
        f"{'time':>8}  dir"
    )
    for r, sri, checks, time in shown:
        print(
            f"{r.started_at:<26} {r.topic:<14} {r.lab:<26} {r.scale:<8} {sri:<{w}} {checks:<7} "
            f"{time:>8}  {r.dir}"
        )
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    dirs = os.environ.get("MLATLAS_DATA", "(unset)")
    print(f"MLATLAS_DATA: {dirs}")
    for name, info in sorted(REGISTRY.items()):
        size = sum(f.size for f in info.files) / 1e6
        state = "on disk" if is_available(name) else "missing"
        print(f"  {name:<20} {size:>7.1f} MB  {state:<8} {info.title}")
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    print("The modern landscape:")
    for c in LANDSCAPE:
        parts = [f"{get_topic(s).title} ({get_topic(s).number})" for s in c.topics] + list(c.extra)
        print(f"  {c.name} = {' + '.join(parts)}")
    print("\nTrends:")
    for tr in TRENDS:
        print(f"  {tr.name}: {tr.summary} [{', '.join(tr.topics)}]")
    return 0


def _check_site_folder(out: Path, runs: Path) -> None:
    """`report` replaces its --out folder: refuse one that is not a site it built."""
    if out.is_symlink():
        raise UsageError(f"--out {out} is a symbolic link; name the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if runs.resolve().is_relative_to(out.resolve()):
        raise UsageError(f"--out {out} holds the runs folder {runs}; choose another --out")
    if any(out.iterdir()) and not (out / "index.html").is_file():
        raise UsageError(
            f"--out {out} is not empty and holds no built site (no index.html); "
            "choose another --out, which the report replaces"
        )


def cmd_report(args: argparse.Namespace) -> int:
    from mlatlas.report import build_site

    with _file_errors(args.out):
        _check_site_folder(Path(args.out), Path(args.runs))
        pages = build_site(args.runs, args.out)
    print(
        f"wrote {len(pages)} pages to {args.out}/ (open {args.out}/index.html or run mlatlas serve)"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mlatlas.report.serve import NoSiteError, is_loopback, make_server

    try:
        server = make_server(args.dir, args.port, host=args.host)
    except NoSiteError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # port in use, a privileged port, an address not on this machine
        raise UsageError(
            f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"
        ) from None
    host, port = server.server_address[:2]
    if not is_loopback(args.host):
        print(
            f"mlatlas: warning: listening on {host}: other machines can read the site",
            file=sys.stderr,
        )
    print(f"serving {args.dir}/ at http://{_url_host(host)}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def resume_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--resume",
        action="store_true",
        help="finish the newest killed run of each lab with the same scale, seed and "
        "settings; start a new run where there is none",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mlatlas", description="An executable guide to machine learning.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("topics", help="the map: sections and topics")
    s.add_argument("-v", "--verbose", action="store_true", help="show each topic's tagline")
    s.set_defaults(fn=cmd_topics)

    s = sub.add_parser("show", help="one topic: description, insights, labs, source")
    s.add_argument("topic", help="number, slug or alias")
    s.add_argument("--out", default="runs", help="where to look for the last runs")
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("path", help="a learning track with its prerequisites, in order")
    s.add_argument("track", help=", ".join(t.slug for t in TRACKS))
    s.set_defaults(fn=cmd_path)

    def run_options(s: argparse.ArgumentParser, scale: str) -> None:
        s.add_argument("--scale", choices=SCALES, default=scale)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device", choices=DEVICES, default="auto")
        s.add_argument("--out", default="runs", help="folder for run results (default: runs)")
        s.add_argument(
            "--nproc",
            type=_positive,
            default=1,
            help="train data-parallel on N processes (relaunches the command under torchrun; "
            "gloo on CPU, NCCL on CUDA)",
        )

    s = sub.add_parser("run", help="run a topic's labs (or one lab)")
    s.add_argument("topic")
    s.add_argument("lab", nargs="?")
    run_options(s, "default")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    resume_option(s)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("resume", help="finish a killed run in its own folder")
    s.add_argument("run_dir", metavar="RUN_DIR", help="e.g. runs/rnn/adding/20250101-120000-...")
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser("verify", help="run labs and print every claim with its verdict")
    s.add_argument("topics", nargs="*")
    run_options(s, "default")
    resume_option(s)
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("runs", help="past runs, newest first, with killed and running ones")
    s.add_argument("--out", default="runs")
    s.add_argument("--topic")
    s.add_argument("--limit", type=_count, default=50)
    s.set_defaults(fn=cmd_runs)

    s = sub.add_parser(
        "calibrate", help="the skewness the claims of the latest runs met, and the rule's error"
    )
    s.add_argument("--runs", default="runs", help="folder of run results (default: runs)")
    s.add_argument("--scale", choices=SCALES, default="default")
    s.add_argument("--trials", type=_count, default=4000)
    s.set_defaults(fn=cmd_calibrate)

    s = sub.add_parser("power", help="replicates a pilot run's claims need for 80%% power")
    s.add_argument("run_dir", metavar="RUN_DIR", help="a pilot run (another --seed)")
    s.set_defaults(fn=cmd_power)

    s = sub.add_parser("datasets", help="registered datasets and whether they are on disk")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("landscape", help="how the topics combine in today's systems")
    s.set_defaults(fn=cmd_landscape)

    s = sub.add_parser("report", help="build the static site from the latest runs")
    s.add_argument("--runs", default="runs", help="folder of run results (default: runs)")
    s.add_argument("--out", default="site", help="output folder (default: site)")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("serve", help="serve the built site on 127.0.0.1")
    s.add_argument("--dir", default="site")
    s.add_argument("--port", type=_port, default=8000)
    s.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    s.set_defaults(fn=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv`; return the exit status (0 ok, 1 a lab failed, 2 a user
    error, reported in one line on stderr)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if distributed.launched() and distributed.rank() != 0:
        distributed.silence()  # torchrun worker: rank 0 alone prints
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv
    code = _dispatch(args)
    if distributed.launched() and distributed.initialized():
        distributed.shutdown(code)  # does not return: gloo may hang at interpreter exit
    return code


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if distributed.launched() and args.command in ("run", "verify"):
            distributed.init(pick_device(args.device))
        return args.fn(args)
    except USER_ERRORS as exc:
        _fail(str(exc.args[0]) if exc.args else str(exc))
        return 2
    except KeyboardInterrupt:
        print("mlatlas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
