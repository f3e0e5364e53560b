"""The layers of DESIGN.md, enforced: dependencies point down only.

- Edges (web/, realtime/) never import storage: they get dataclasses and service errors.
- services/ imports neither Quart nor python-socketio (and nothing from the edges).
- storage/ imports nothing above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamzy"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from streamzy import storage` names the package through the alias
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("edge", ["web", "realtime"])
def test_edges_never_import_storage(edge: str) -> None:
    assert offenders(edge, ("streamzy.storage",)) == []


def test_services_import_no_framework_and_no_edge() -> None:
    assert offenders("services", ("quart", "socketio", "engineio", "hypercorn",
                                  "streamzy.web", "streamzy.realtime", "streamzy.guards",
                                  "streamzy.app", "streamzy.wiring")) == []


def test_storage_imports_nothing_above_it() -> None:
    assert offenders("storage", ("streamzy.services", "streamzy.guards", "streamzy.web",
                                 "streamzy.realtime", "streamzy.app", "streamzy.wiring")) == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from streamzy import storage\nimport streamzy.storage.db as db\n")
    assert {"streamzy.storage", "streamzy.storage.db"} <= imported_modules(sample)
