"""Streamzy (streamzy.asgi:app, unchanged) with the inline room emit of inline_emit.py."""

from benchmarks.experiments.inline_emit import install
from streamzy.asgi import app

install(app.sio)
