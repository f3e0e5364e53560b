"""streamzy_tuned.py plus per-second diagnostics (diagnostics.py) to $STREAMZY_DIAG_PATH."""

from benchmarks.experiments.diagnostics import install
from benchmarks.experiments.streamzy_tuned import app

install(app)
