"""streamzy_tuned.py plus spread-out session re-checks (recheck_jitter.py)."""

from benchmarks.experiments.recheck_jitter import install
from benchmarks.experiments.streamzy_tuned import app

install(app.events)
