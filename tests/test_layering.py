"""The layering of src/tracker, checked from the imports themselves.

Each subpackage may import only the ones listed for it here: data flows from Step Functions
(aws) through documents and the chain into tracking and publishing, and from the chain into the
verifier and the indexer, never back. `cli` (the only home of click besides scripts/) is imported
only by scripts, and `dev` (local services, the demo) only by scripts and tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tracker"

# subpackage (or top-level module) -> what it may import of ours
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "retry": set(),
    "documents": {"errors"},
    "aws": {"documents", "errors", "retry"},
    "chain": {"documents", "errors", "retry"},
    "publish": {"documents", "errors"},
    "identity": {"chain", "documents", "errors", "publish", "retry"},
    "tracking": {"aws", "chain", "documents", "errors", "publish", "retry"},
    # aws only for `verify --aws`: the recorded code identity against what Lambda and ECS say today
    "verify": {"aws", "chain", "documents", "errors", "identity", "publish", "retry"},
    "indexer": {"chain", "documents", "errors", "retry"},
    "cli": {"chain", "errors"},
    "dev": {"aws", "chain", "documents", "errors", "identity", "publish", "retry", "tracking"},
}
ONLY_SCRIPTS_AND_TESTS = {"cli", "dev"}


def _unit(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, unit of ours) for every import of tracker.* in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tracker":
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("tracker.")]
        found += [(node.lineno, name) for name in names]
    return found


def _third_party(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
    return modules


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_unit_has_a_rule():
    units = {_unit(p) for p in SOURCES} - {"__init__"}
    assert units <= set(ALLOWED), f"no layering rule for {sorted(units - set(ALLOWED))}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    unit = _unit(path)
    if unit == "__init__":
        return
    wrong = [(line, name) for line, name in _imports(path) if name != unit and name not in ALLOWED[unit]]
    assert not wrong, f"{path.relative_to(ROOT)} ({unit}) imports {wrong}: not allowed for {unit}"


@pytest.mark.parametrize("path", [p for p in SOURCES if _unit(p) != "cli"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_click_lives_only_in_cli(path):
    assert "click" not in _third_party(path), f"{path.relative_to(ROOT)} imports click outside tracker.cli"


def test_cli_and_dev_are_imported_only_by_scripts_and_tests():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports tracker.{name}"
        for path in SOURCES
        for line, name in _imports(path)
        if name in ONLY_SCRIPTS_AND_TESTS and _unit(path) != name and _unit(path) != "dev"
    ]
    assert not offenders, offenders


def test_the_checker_sees_a_forbidden_import(tmp_path):
    """The rule is not vacuous: an import of tracking from documents is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text("from tracker.tracking.engine import track\nimport tracker.verify.checks\n")
    assert [name for _line, name in _imports(sample)] == ["tracking", "verify"]
    assert "tracking" not in ALLOWED["documents"] and "verify" not in ALLOWED["documents"]
