"""Streamzy with the collector tuned (an experiment): start-up objects frozen, a larger
young generation."""
import gc

from streamzy.asgi import app  # noqa: F401

gc.collect()
gc.freeze()
gc.set_threshold(50_000, 20, 100)
