"""Streamzy (unchanged code) with per-second diagnostics (diagnostics.py) written to
$STREAMZY_DIAG_PATH: loop lag, GC pauses, group-commit batches, session re-checks."""

from benchmarks.experiments.diagnostics import install
from streamzy.asgi import app

install(app)
__all__ = ["app"]
