"""Streamzy (unchanged code) with bcrypt on two nice-19 threads (bcrypt_nice.py)."""

from benchmarks.experiments.bcrypt_nice import install
from streamzy.asgi import app

install()
__all__ = ["app"]
