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


def imported_modules(path: Path, package: str = "") -> set[str]:
    """Every module a file imports; relative imports resolved against ``package``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            # `from streamzy import storage` names the package through the alias
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).parent.parts)


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in imported_modules(path, package_of(path)):
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


@pytest.mark.parametrize("line", [
    "import streamzy.storage.db", "from streamzy.storage import models",
    "from streamzy import storage", "from ..storage.db import Database", "from .. import storage",
])
def test_the_rule_sees_every_spelling(tmp_path: Path, line: str) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(line + "\n")
    found = imported_modules(sample, "streamzy.web")
    assert any(n == "streamzy.storage" or n.startswith("streamzy.storage.") for n in found)


def test_the_rule_passes_allowed_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from streamzy.services.errors import as_service_error\n")
    assert not any(n.startswith("streamzy.storage") for n in imported_modules(sample))
