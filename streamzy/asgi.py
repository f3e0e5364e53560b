"""ASGI entry point for servers started from the outside:
``hypercorn -c hypercorn.toml streamzy.asgi:app`` (or ``uvicorn streamzy.asgi:app``).

Settings come from the environment and ``.env``; nothing is generated here.
"""

from streamzy.app import create_app
from streamzy.config import Settings
from streamzy.logs import configure as configure_logging
from streamzy.serving import exit_refused

settings = Settings()
configure_logging(settings)  # JSON lines or text (STREAMZY_LOG_FORMAT), before anything logs
app = create_app(settings)
# Hypercorn treats a failed startup as a clean exit (and respawns a worker that exits 0);
# a refused start must end the process with a non-zero status instead.
app.on_refused = exit_refused
