"""streamzy_tuned.py plus one bulk session re-check per interval (session_sweeper.py)."""

from benchmarks.experiments.diagnostics import install as diagnostics
from benchmarks.experiments.session_sweeper import install as sweeper
from benchmarks.experiments.streamzy_tuned import app

sweeper(app)
diagnostics(app)  # only when STREAMZY_DIAG_PATH is set
