"""What a result was measured with (commit, package versions, machine), so that every table
printed or saved names it in its header."""

from __future__ import annotations

import json
import os
import platform
import subprocess

from benchmarks.harness.config import NODE_DIR, ROOT


def versions() -> str:
    import importlib.metadata as md

    def v(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()
    ws = json.loads((NODE_DIR / "node_modules" / "ws" / "package.json").read_text())["version"] \
        if (NODE_DIR / "node_modules" / "ws").exists() else "-"
    return (f"Python {platform.python_version()}, Hypercorn {v('hypercorn')}, Uvicorn "
            f"{v('uvicorn')} (h11 {v('h11')}, wsproto {v('wsproto')}, websockets "
            f"{v('websockets')}, uvloop {v('uvloop')}), python-socketio {v('python-socketio')}, "
            f"python-engineio {v('python-engineio')}, SQLAlchemy {v('sqlalchemy')}, "
            f"Node {node}, ws {ws}; {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")


def commit() -> str:
    """``git describe`` of the tree measured ('' outside a git checkout)."""
    return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False).stdout.strip()
