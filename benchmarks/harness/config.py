"""Constants shared by the runner, the scenarios and profile.py, kept in one place so that
the CPU layout, the only address ever targeted and the apps measured cannot drift apart."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
NODE_DIR = ROOT / "benchmarks" / "node"
LOADGEN = NODE_DIR / "loadgen.js"
HOST = "127.0.0.1"
SERVER_CPU = 0
LOAD_CPU = 1
P99_LIMIT_MS = 100.0
DEFAULT_APPS = {"streamzy": "streamzy.asgi:app", "baseline": "benchmarks.baseline_server:app"}
# Mutated in place by --streamzy-app / --baseline-app (and profile.py --asgi): every module
# holds this same dict, so it must never be rebound.
APPS = dict(DEFAULT_APPS)
LOOP = {"name": "uvloop"}  # --loop: the event loop of both servers (Streamzy ships uvloop)
PREVIOUS_APP = "benchmarks.experiments.previous:app"
# --baseline-rev: a checkout of an earlier Streamzy measured in the baseline's place (same
# settings, its own copy of the database); empty when the baseline is bare python-socketio.
PREVIOUS = {"tree": ""}


def log(*parts: Any) -> None:
    """Progress on stderr, so that stdout carries only the report."""
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)
