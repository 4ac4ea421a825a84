"""The import rule: a topic imports only from core and lower-numbered topics; core and guide
import no topic."""

from __future__ import annotations

import ast
from pathlib import Path

from mlatlas.guide import TOPICS, get_topic

PKG = Path(__file__).resolve().parents[1] / "mlatlas"
SECTIONS = {t.section for t in TOPICS}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def _topic_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[0] == "mlatlas" and parts[1] in SECTIONS:
        return get_topic(parts[2]).number
    return None


def violations(root: Path = PKG) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("core", "guide"):
            own = 0  # may import no topic at all
        elif rel[0] in SECTIONS and len(rel) >= 3:
            own = get_topic(rel[1]).number
        else:
            continue  # cli, report: the top level may use everything
        for mod in _imports(path):
            n = _topic_of(mod)
            if n is not None and (own == 0 or n > own):
                found.append(f"{path.relative_to(root)} imports {mod}")
    return found


def test_no_topic_imports_a_later_topic_and_core_imports_none():
    assert violations() == []


def test_checker_catches_a_violation(tmp_path):
    bad = tmp_path / "foundations" / "backprop"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("from mlatlas.architectures.cnn import conv2d\n")
    core = tmp_path / "core"
    core.mkdir()
    (core / "y.py").write_text("import mlatlas.foundations.backprop.autograd\n")
    assert violations(tmp_path) == [
        "core/y.py imports mlatlas.foundations.backprop.autograd",
        "foundations/backprop/x.py imports mlatlas.architectures.cnn",
        "foundations/backprop/x.py imports mlatlas.architectures.cnn.conv2d",
    ]


def test_topic_packages_sit_in_their_guide_section():
    for section_dir in PKG.iterdir():
        if section_dir.name in SECTIONS:
            for topic_dir in section_dir.iterdir():
                if (topic_dir / "__init__.py").exists():
                    assert get_topic(topic_dir.name).section == section_dir.name
