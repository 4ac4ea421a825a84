"""The mlatlas command: navigation, errors (one line, exit 2), runs, resume and verify."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlatlas.cli as cli
from mlatlas.cli import main
from mlatlas.core.checkpoint import CheckpointError
from mlatlas.core.data.registry import ChecksumError, DataError, DatasetMissingError
from mlatlas.core.record import RunRecord


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_topics_lists_all_sections_and_topics(capsys):
    code, out, _ = run(capsys, "topics")
    assert code == 0
    assert "1. Neural Network Foundations" in out and "6. Practical Considerations" in out
    rows = [line for line in out.splitlines() if line.startswith("  ") and "[" in line]
    assert len(rows) == 22
    assert "backprop" in out and "efficiency" in out and "[4 labs]" in out


def test_show_by_number_and_alias(capsys):
    code, out, _ = run(capsys, "show", "1")
    assert code == 0
    assert "Key insights: Compositional function learning" in out
    assert "gradient_flow" in out and "autograd.py" in out and "claim:" in out
    code, out, _ = run(capsys, "show", "attention")
    assert code == 0 and "Query-key-value attention" in out and "char_gpt" in out
    assert "sequence models  -> topic 6 rnn" in out
    code, out, _ = run(capsys, "show", "13")
    assert code == 0 and "KL divergence regularization" in out and "posterior_collapse" in out
    code, out, _ = run(capsys, "show", "16")
    assert code == 0 and "Labs: none yet" in out and "Bellman equations" in out


def test_path_nlp_order(capsys):
    code, out, _ = run(capsys, "path", "nlp")
    assert code == 0
    lines = [line for line in out.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    titles = [line.split("] ", 1)[1] for line in lines]
    assert titles[0].startswith("Neural Networks and Backpropagation  + prerequisite")
    assert [t.split("  ")[0] for t in titles] == [
        "Neural Networks and Backpropagation",
        "Gradient Descent and Optimization",
        "Recurrent Neural Networks and LSTMs",
        "Attention Mechanisms and Transformers",
        "Transfer Learning and Fine-tuning",
        "Self-Supervised Learning",
        "Foundation Models and Pre-training",
    ]
    assert "Background subjects:" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "nope"], "valid topics: 1 backprop"),
        (["path", "nope"], "valid tracks: cv, nlp, generative, research, applied"),
        (["run", "backprop", "nolab"], "valid labs: universal_approximation"),
        (["run", "rl"], "has no labs yet"),
        (["run", "backprop", "gradient_flow", "--set", "oops"], "expected key=value"),
        (
            ["run", "backprop", "gradient_flow", "--set", "nope=1", "--scale", "smoke"],
            "valid settings",
        ),
        (["run", "backprop", "--set", "depth=3"], "--set applies to one lab"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, tmp_path, args, needle):
    code, _, err = (
        run(capsys, *args, "--out", str(tmp_path)) if args[0] == "run" else run(capsys, *args)
    )
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_scale_and_device_exit_2_without_traceback():
    for extra in (["--scale", "huge"], ["--device", "tpu"]):
        p = subprocess.run(
            [sys.executable, "-m", "mlatlas", "run", "backprop", *extra],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 2
        assert "invalid choice" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_run_one_lab_then_runs_lists_it(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "run",
        "1",
        "gradient_flow",
        "--scale",
        "smoke",
        "--out",
        str(tmp_path),
        "--set",
        "seeds=1",
    )
    assert code == 0
    # the summary counts each verdict apart; a word search would find "supported" anywhere
    summary = re.search(
        r"experiments: (\d+) supported, (\d+) refuted, (\d+) inconclusive; "
        r"checks: (\d+) of (\d+) pass; 0 lab\(s\) failed",
        out,
    )
    assert summary, out
    result_file = next(tmp_path.glob("backprop/gradient_flow/*/result.json"))
    claims = json.loads(result_file.read_text())["claims"]
    counts = [int(g) for g in summary.groups()]
    assert counts[:3] == [
        sum(c["verdict"] == v for c in claims) for v in ("supported", "refuted", "inconclusive")
    ]
    assert counts[4] == sum(c["kind"] == "check" for c in claims)
    assert sum(counts[:3]) + counts[4] == len(claims) > 0
    result = next(tmp_path.glob("backprop/gradient_flow/*/result.json"))
    assert json.loads(result.read_text())["config"]["seeds"] == 1
    code, out, _ = run(capsys, "runs", "--out", str(tmp_path))
    assert code == 0 and "gradient_flow" in out and "smoke" in out
    code, out, _ = run(capsys, "show", "backprop", "--out", str(tmp_path))
    assert code == 0 and "last run: smoke scale, seed 0" in out
    shown = re.findall(r"\(([a-z]+)\)\n", out)
    assert shown and set(shown) <= {"supported", "refuted", "inconclusive", "pass", "fail"}
    assert [f"({c['verdict']})" for c in claims] == [f"({v})" for v in shown]


def test_verify_smoke_runs_every_lab_of_topic_1(capsys, tmp_path):
    code, out, _ = run(capsys, "verify", "backprop", "--scale", "smoke", "--out", str(tmp_path))
    assert code == 0, out
    for name in ("universal_approximation", "gradient_flow", "why_depth", "engine_equals_torch"):
        assert name in out
    assert "0 lab(s) failed" in out
    results = list(tmp_path.glob("backprop/*/*/result.json"))
    assert len(results) == 4
    assert all(json.loads(r.read_text())["status"] == "ok" for r in results)


def test_datasets_and_landscape(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "mnist" in out and "omniglot" in out
    code, out, _ = run(capsys, "landscape")
    assert code == 0 and "Large Language Models = " in out and "Scaling laws" in out


# errors from the machine and the data layer: one line, exit 2; bugs are not swallowed ----


def _raises(exc: BaseException):
    def fake_run_lab(*args, **kwargs):
        raise exc

    return fake_run_lab


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/runs/x"), "cannot write to "),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (DatasetMissingError("dataset 'mnist' needs file 'train.gz'\nPut it at ..."), "mnist"),
        (ChecksumError("checksum mismatch for train.gz"), "checksum mismatch"),
        (DataError("unknown dataset 'x'"), "unknown dataset"),
        (CheckpointError("ckpt.pt cannot be loaded safely"), "cannot be loaded safely"),
    ],
)
def test_machine_and_data_errors_are_one_line_exit_2(capsys, monkeypatch, exc, needle):
    monkeypatch.setattr(cli, "run_lab", _raises(exc))
    code, _, err = run(capsys, "run", "backprop", "gradient_flow", "--out", "/data/runs")
    assert code == 2 and needle in err
    assert err.startswith("mlatlas: error: ") and len(err.splitlines()) == 1
    if isinstance(exc, OSError) and not isinstance(exc, DataError):
        target = exc.filename or "/data/runs"
        assert err == f"mlatlas: error: cannot write to {target}: {exc.strerror}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "1", "--out", "/proc/nope/x", "--scale", "smoke"],
        ["verify", "1", "--out", "/proc/nope/x", "--scale", "smoke"],
        ["report", "--out", "/proc/nope/x"],
    ],
)
def test_an_out_folder_that_cannot_be_created_is_one_line_exit_2(args):
    p = subprocess.run(
        [sys.executable, "-m", "mlatlas", *args], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr == "mlatlas: error: cannot create /proc/nope/x: No such file or directory\n"


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.EIO, "Input/output error"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/weights.pt"),
        ValueError("a bug"),
        KeyError("bug"),
    ],
)
def test_genuine_bugs_are_not_swallowed(monkeypatch, exc):
    monkeypatch.setattr(cli, "run_lab", _raises(exc))
    with pytest.raises(type(exc)):
        main(["run", "backprop", "gradient_flow"])


def test_subcommand_parse_errors_are_one_line_and_help_exits_0(capsys):
    for args in (
        ["run", "backprop", "--bogus"],
        ["runs", "--limit", "-3"],
        ["serve", "--port", "x"],
    ):
        code, _, err = run(capsys, *args)
        assert code == 2 and err.startswith("mlatlas: error: ") and len(err.splitlines()) == 1
    code, out, err = run(capsys, "resume", "--help")
    assert code == 0 and "RUN_DIR" in out and err == ""


# resume -------------------------------------------------------------------------------


def _killed_run(out: Path, overrides: dict) -> Path:
    """A run folder as `run_lab` leaves it when killed before its first checkpoint."""
    d = out / "backprop" / "gradient_flow" / "20250101-000000-smoke-s0"
    d.mkdir(parents=True)
    info = {"topic": "backprop", "lab": "gradient_flow", "scale": "smoke", "seed": 0}
    info |= {"device": "cpu", "overrides": overrides, "started_at": "2025-01-01T00:00:00+00:00"}
    (d / "run.json").write_text(json.dumps(info))
    return d


def test_run_resume_finishes_the_killed_run_in_its_own_folder(capsys, tmp_path):
    killed = _killed_run(tmp_path, {"seeds": 1})
    code, out, _ = run(capsys, "runs", "--out", str(tmp_path))
    assert code == 0 and "incomplete (no checkpoint yet)" in out
    args = ["run", "1", "gradient_flow", "--scale", "smoke", "--set", "seeds=1"]
    args += ["--out", str(tmp_path), "--resume"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and f"resuming the incomplete run in {killed}" in out
    assert "0 lab(s) failed" in out
    assert json.loads((killed / "result.json").read_text())["status"] == "ok"
    assert len(list(tmp_path.glob("backprop/gradient_flow/*"))) == 1
    code, out, _ = run(capsys, *args)  # nothing left to resume: a new run
    assert code == 0 and "no incomplete run to resume; starting a new run" in out
    assert len(list(tmp_path.glob("backprop/gradient_flow/*/result.json"))) == 2
    code, _, err = run(capsys, "resume", str(killed))
    assert code == 2 and "is complete" in err and len(err.splitlines()) == 1


def test_resume_of_what_is_not_a_killed_run_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    for target in (tmp_path, tmp_path / "nowhere", tmp_path / "file"):
        code, _, err = run(capsys, "resume", str(target))
        assert code == 2 and err.startswith("mlatlas: error: ") and len(err.splitlines()) == 1
        assert str(target) in err


def _record(status: str = "ok", progress: str = "", claims: list | None = None) -> RunRecord:
    return RunRecord(
        topic="backprop",
        topic_number=1,
        lab="gradient_flow",
        title="Per-layer gradients",
        insights=["gradient flow"],
        scale="smoke",
        seed=0,
        device="cpu",
        status=status,
        claims=claims or [],
        started_at=f"2025-01-01T00:00:0{len(progress) % 10}+00:00",
        wall_time_s=1.5,
        error="Traceback ...\nRuntimeError: boom" if status == "error" else None,
        progress=progress,
        dir=Path("runs/backprop/gradient_flow") / status,
    )


CLAIM = {
    "statement": "tanh keeps more gradient",
    "kind": "experiment",
    "estimate": 0.8,
    "interval": [0.7, 0.9],
    "n": 5,
    "verdict": "supported",
}


def test_resume_command_reports_like_run(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "resume_run", lambda d: seen.append(d) or _record(claims=[CLAIM]))
    code, out, _ = run(capsys, "resume", "runs/backprop/gradient_flow/x")
    assert code == 0 and seen == [Path("runs/backprop/gradient_flow/x")]
    assert "== backprop / gradient_flow: Per-layer gradients" in out
    assert "tanh keeps more gradient" in out and "0.8 [0.7, 0.9]" in out
    assert "experiments: 1 supported, 0 refuted, 0 inconclusive" in out
    assert "0 lab(s) failed" in out
    monkeypatch.setattr(cli, "resume_run", lambda d: _record("error"))
    code, out, _ = run(capsys, "resume", "x")
    assert code == 1 and "ERROR: RuntimeError: boom" in out and "1 lab(s) failed" in out


def test_runs_shows_killed_and_running_runs_with_progress_never_as_results(capsys, monkeypatch):
    records = [
        _record(claims=[CLAIM]),
        _record("incomplete", "fit 2 'tanh' step 350/2000"),
        _record("running", "fit 1 'relu' step 10/2000"),
        _record("error"),
    ]
    asked = []

    def fake_list_runs(out, include_incomplete=False):
        asked.append(include_incomplete)
        return records

    monkeypatch.setattr(cli, "list_runs", fake_list_runs)
    code, out, _ = run(capsys, "runs")
    assert code == 0 and asked == [True]
    head, ok, killed, running, failed = out.splitlines()
    col = head.index("S/R/I")
    assert ok[col:].startswith("1/0/0 ") and failed[col:].startswith("error ")
    assert killed[col:].startswith("incomplete (fit 2 'tanh' step 350/2000) ")
    assert running[col:].startswith("running (fit 1 'relu' step 10/2000) ")
    for line in (killed, running):  # no counts, no checks, no time: not a result
        assert "0/0" not in line and "1.5s" not in line and "error" not in line
    assert [line.index("runs/") for line in (ok, killed, running, failed)] == [
        head.index("dir")
    ] * 4


def _timed(topic: str, lab: str, seconds: float, scale: str = "default") -> RunRecord:
    return RunRecord(
        topic=topic, topic_number=1, lab=lab, title=lab, insights=[], scale=scale, seed=0,
        device="cpu", status="ok", wall_time_s=seconds,
    )  # fmt: skip


def test_time_summary_gives_total_topic_budgets_and_the_slowest_ten():
    records = [_timed("a", f"lab{i}", float(i)) for i in range(12)]
    records += [_timed("b", "huge", 700.0)]
    text = cli._time_summary(records)
    assert text.startswith(f"wall time: {sum(range(12)) + 700} s in all")
    assert re.search(r"\n  a +66\.0 s \(budget 600 s\)\n", text)
    assert re.search(r"\n  b +700\.0 s \(budget 600 s\)  OVER BUDGET\n", text)
    slow = text.split("slowest 10 labs:\n")[1].splitlines()
    assert [line.split()[-1] for line in slow] == ["huge"] + [f"lab{i}" for i in range(11, 2, -1)]
    mixed = cli._time_summary([_timed("a", "x", 40.0, "smoke"), _timed("a", "y", 1.0)])
    assert "budget" not in mixed  # no single scale, so no single budget to compare against
