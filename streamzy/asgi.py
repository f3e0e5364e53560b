"""ASGI entry point for servers started from the outside:
``hypercorn -c hypercorn.toml streamzy.asgi:app`` (or ``uvicorn streamzy.asgi:app``).

Settings come from the environment and ``.env``; nothing is generated here.
"""

from streamzy.app import create_app
from streamzy.serving import exit_refused

app = create_app()
# Hypercorn treats a failed startup as a clean exit (and respawns a worker that exits 0);
# a refused start must end the process with a non-zero status instead.
app.on_refused = exit_refused
