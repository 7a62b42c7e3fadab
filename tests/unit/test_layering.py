"""Packages depend one way (docs/architecture.md): the shell composes, core is at the bottom, the dashboard
speaks to the rest only over HTTP. This test reads every import (also those inside functions) and fails on one
that goes the wrong way."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("core", "collector", "analytics", "alerts", "dashboard", "sample_data", "callscope", "bench", "tests")

# Which of our packages each package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "collector": {"core"},
    "analytics": {"core"},
    "alerts": {"core", "analytics"},
    "sample_data": {"core", "collector"},
    "dashboard": set(),  # the read API over HTTP, through dashboard/api_client.py
    "callscope": {"core", "collector", "analytics", "alerts", "dashboard", "sample_data"},
    "bench": {"core", "collector", "analytics", "alerts", "sample_data", "callscope"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in OURS)
    return found


def test_allowed_dependencies_form_no_cycle():
    try:
        order = list(TopologicalSorter(ALLOWED).static_order())
    except CycleError as exc:  # pragma: no cover - the table above is the thing under test
        raise AssertionError(f"the allowed dependencies have a cycle: {exc.args[1]}") from None
    assert order.index("core") < order.index("callscope")


def test_every_import_goes_the_allowed_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for target in imported_packages(path) - allowed - {package}:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_layering_check_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from callscope.cli import main\n    import dashboard.api_client\n")
    assert imported_packages(sample) == {"callscope", "dashboard"}
