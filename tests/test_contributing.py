"""The worked example in CONTRIBUTING.md is a lab that runs as written: it records a claim
decided by the core, a check that passes at the saddle and fails off it, a table, a figure
and its dataset."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from mlatlas.core.lab import isolated_registry
from mlatlas.core.runner import run_lab

CONTRIBUTING = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"
MARKER = r"<!-- worked example: tests/test_contributing\.py runs this block -->"


def worked_example() -> str:
    found = re.search(MARKER + r"\s*```python\n(.*?)```", CONTRIBUTING.read_text(), re.S)
    assert found, "CONTRIBUTING.md lost its worked example (or its marker)"
    return found.group(1)


@pytest.fixture
def example_lab(tmp_path):
    """The example imported from a file (the misspelt-setting check reads the lab's source),
    registered only for this test."""
    path = tmp_path / "worked_example.py"
    path.write_text(worked_example())
    with isolated_registry():
        spec = importlib.util.spec_from_file_location("worked_example", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module.saddle_on_digits.spec


def _result(res) -> dict:
    assert res.ok, res.error
    return json.loads((res.dir / "result.json").read_text())


def test_the_worked_example_runs_and_records_what_a_lab_must(example_lab, tmp_path):
    res = run_lab(example_lab, "smoke", 0, out=tmp_path / "runs")
    r = _result(res)
    experiment, check = r["claims"]
    assert experiment["kind"] == "experiment" and experiment["n"] == 2
    assert experiment["verdict"] in {"supported", "refuted", "inconclusive"}
    assert check["kind"] == "check" and check["verdict"] == "pass" and check["estimate"] == 0.0
    assert [row["held_out_error_plain"] for row in r["tables"]["held_out_error"]["rows"]] == [
        1.0,
        1.0,
    ]
    assert r["datasets"][0]["name"] == "sklearn-digits"
    assert {"held_out_error.png", "held_out_error.svg"} <= {p.name for p in res.dir.iterdir()}


def test_its_check_fails_off_the_saddle(example_lab, tmp_path):
    r = _result(run_lab(example_lab, "smoke", 0, out=tmp_path / "runs", overrides={"init": 1e-3}))
    check = r["claims"][1]
    assert check["verdict"] == "fail" and check["estimate"] > 0
