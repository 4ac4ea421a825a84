"""The mlatlas command: navigation, errors (one line, exit 2), runs and verify."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mlatlas.cli import main


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
    assert code == 0 and "Labs: none yet" in out and "KL divergence regularization" in out


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
        (["run", "vae"], "has no labs yet"),
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
