"""The web edge never imports storage: it gets dataclasses and service errors from below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "streamzy" / "web"
FORBIDDEN = "streamzy.storage"


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, with relative imports resolved against its package."""
    package = "streamzy.web"
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]  # from streamzy import storage
    return found


def _touches_storage(module: str) -> bool:
    return module == FORBIDDEN or module.startswith(FORBIDDEN + ".")


def test_the_checker_sees_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    for line in ("import streamzy.storage.db", "from streamzy.storage import models",
                 "from streamzy import storage", "from ..storage.db import Database",
                 "from .. import storage"):
        sample.write_text(line + "\n")
        assert any(_touches_storage(m) for m in _imported_modules(sample)), line
    sample.write_text("from streamzy.services.errors import as_service_error\n")
    assert not any(_touches_storage(m) for m in _imported_modules(sample))


@pytest.mark.parametrize("path", sorted(WEB.rglob("*.py")), ids=lambda p: p.name)
def test_web_module_does_not_import_storage(path: Path) -> None:
    assert [m for m in _imported_modules(path) if _touches_storage(m)] == []
