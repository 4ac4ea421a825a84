"""The lab contract, enforced on the source: one file per lab under ``labs/``, at most 300
lines; no lab seeds a generator itself or computes a verdict (the core does both)."""

from __future__ import annotations

import ast
from pathlib import Path

from mlatlas.core.runner import discover, implemented_topics

PKG = Path(__file__).resolve().parents[1] / "mlatlas"
LAB_FILES = sorted(p for p in PKG.glob("*/*/labs/*.py") if p.name != "__init__.py")

FORBIDDEN_CALLS = {
    "manual_seed": "seeds come from ctx.replicates / rep.generator / ctx.seed_torch",
    "default_rng": "use rep.rng(key), ctx.rng or fixed_rng(key)",
    "seed": "use ctx.replicates or ctx.seed_torch",  # np.random.seed, random.seed
    "mean_ci": "the core decides: ctx.claim(...).add(seed_id, ...)",
    "geometric_mean_ci": "the core decides: ctx.claim(..., log=True)",
    "decide_lab": "the runner decides",
    "t_test": "the runner decides",
}
FORBIDDEN_KEYWORDS = {"holds", "value_holds", "verdict"}


def lab_file_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(PKG)
    out = []
    lines = len(path.read_text().splitlines())
    if lines > 300:
        out.append(f"{rel}: {lines} lines (a lab file has at most 300)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in FORBIDDEN_CALLS:
                out.append(f"{rel}:{node.lineno}: calls {name} ({FORBIDDEN_CALLS[name]})")
            for kw in node.keywords:
                if kw.arg in FORBIDDEN_KEYWORDS:
                    out.append(f"{rel}:{node.lineno}: passes {kw.arg}= (the core decides)")
        if isinstance(node, ast.ImportFrom) and node.module == "mlatlas.core.claims":
            out.append(f"{rel}:{node.lineno}: imports the decision rules")
    return out


def test_every_topic_has_one_file_per_lab():
    for t in implemented_topics():
        pkg = PKG / t.section / t.slug
        assert not (pkg / "lab.py").exists(), f"{t.slug}: labs live in labs/, one file each"
        files = {p.stem for p in (pkg / "labs").glob("*.py")} - {"__init__"}
        names = {s.name for s in discover(t)}
        assert names <= files, f"{t.slug}: labs {sorted(names - files)} have no file of their own"


def test_lab_files_follow_the_contract():
    assert LAB_FILES, "no lab files found"
    problems = [p for f in LAB_FILES for p in lab_file_problems(f)]
    assert problems == []


def test_the_checker_catches_violations(tmp_path):
    bad = PKG / "foundations" / "backprop" / "labs" / "_tmp_bad_lab.py"
    bad.write_text(
        "import numpy as np, torch\n"
        "from mlatlas.core.claims import decide_lab\n"
        "rng = np.random.default_rng(0)\n"
        "torch.manual_seed(1)\n"
        "ctx.claim('x', value=1, holds=True)\n" + "#\n" * 300
    )
    try:
        found = lab_file_problems(bad)
    finally:
        bad.unlink()
    assert len(found) == 5, found
