"""The bare baseline with the inline room emit of inline_emit.py."""

from benchmarks.baseline_server import app, sio
from benchmarks.experiments.inline_emit import install

install(sio)
__all__ = ["app"]
