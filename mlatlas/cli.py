"""The `mlatlas` command: navigate the guide, run its labs, verify its claims."""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

from mlatlas.core.claims import summary_line
from mlatlas.core.data import REGISTRY, is_available
from mlatlas.core.lab import SCALES, ConfigError, parse_override
from mlatlas.core.record import RunRecord
from mlatlas.core.runner import (
    discover,
    get_lab,
    has_code,
    latest_runs,
    list_runs,
    run_lab,
)
from mlatlas.core.runtime import DEVICES, DeviceError
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

USER_ERRORS = (UnknownNameError, ConfigError, DeviceError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        self.exit(2, f"mlatlas: error: {message}\n")


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


def _overrides(pairs: list[str]) -> dict:
    return dict(parse_override(p) for p in pairs)


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


def _run_many(specs: list, args: argparse.Namespace, overrides: dict) -> int:
    rows, errors, times = [], 0, {}
    for spec in specs:
        res = run_lab(
            spec,
            scale=args.scale,
            seed=args.seed,
            device=args.device,
            out=args.out,
            overrides=overrides,
        )
        _report_run(res)
        errors += not res.ok
        times[spec.topic] = times.get(spec.topic, 0.0) + res.wall_time_s
        rows += [{"topic": spec.topic, "lab": spec.name, "claim": c} for c in res.claims]
    print("\n" + _claims_table(rows))
    if len(times) > 1:
        print("\nwall time: " + ", ".join(f"{t} {s:.0f} s" for t, s in times.items()))
    print(f"\n{summary_line(r['claim'] for r in rows)}; {errors} lab(s) failed.")
    return 1 if errors else 0


def cmd_run(args: argparse.Namespace) -> int:
    t = get_topic(args.topic)
    specs = [get_lab(t.slug, args.lab)] if args.lab else discover(t)
    if not specs:
        raise UnknownNameError(f"topic {t.slug} has no labs yet")
    overrides = _overrides(args.set)
    if overrides and len(specs) > 1:
        raise ConfigError("--set applies to one lab: name it, e.g. mlatlas run TOPIC LAB --set k=v")
    return _run_many(specs, args, overrides)


def cmd_verify(args: argparse.Namespace) -> int:
    topics = [get_topic(n) for n in args.topics] if args.topics else list(TOPICS)
    specs = [s for t in topics for s in discover(t)]
    if not specs:
        print("no labs to run for the chosen topics")
        return 0
    return _run_many(specs, args, {})


def cmd_runs(args: argparse.Namespace) -> int:
    runs = list_runs(args.out)
    if args.topic:
        slug = get_topic(args.topic).slug
        runs = [r for r in runs if r.topic == slug]
    if not runs:
        print(f"no runs under {args.out}")
        return 0
    print(
        f"{'started':<26} {'topic':<14} {'lab':<26} {'scale':<8} {'S/R/I':<8} {'checks':<7} "
        f"{'time':>8}  dir"
    )
    for r in runs[: args.limit]:
        k = r.counts()
        sri = f"{k['supported']}/{k['refuted']}/{k['inconclusive']}" if r.ok else "error"
        checks = f"{k['checks_passed']}/{k['checks']}" if r.ok else ""
        print(
            f"{r.started_at:<26} {r.topic:<14} {r.lab:<26} {r.scale:<8} {sri:<8} {checks:<7} "
            f"{r.wall_time_s:>7.1f}s  {r.dir}"
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


def cmd_report(args: argparse.Namespace) -> int:
    from mlatlas.report import build_site

    pages = build_site(args.runs, args.out)
    print(
        f"wrote {len(pages)} pages to {args.out}/ (open {args.out}/index.html or run mlatlas serve)"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mlatlas.report.serve import make_server

    try:
        server = make_server(args.dir, args.port)
    except FileNotFoundError as exc:
        raise UnknownNameError(str(exc)) from None
    host, port = server.server_address[:2]
    print(f"serving {args.dir}/ at http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


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

    s = sub.add_parser("run", help="run a topic's labs (or one lab)")
    s.add_argument("topic")
    s.add_argument("lab", nargs="?")
    run_options(s, "default")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("verify", help="run labs and print every claim with its verdict")
    s.add_argument("topics", nargs="*")
    run_options(s, "default")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("runs", help="past runs, newest first")
    s.add_argument("--out", default="runs")
    s.add_argument("--topic")
    s.add_argument("--limit", type=int, default=50)
    s.set_defaults(fn=cmd_runs)

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
    s.add_argument("--port", type=int, default=8000)
    s.set_defaults(fn=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except USER_ERRORS as exc:
        msg = exc.args[0] if exc.args else str(exc)
        print(f"mlatlas: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlatlas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
