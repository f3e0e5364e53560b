"""ASGI entry point for servers started from the outside:
``hypercorn -c hypercorn.toml streamzy.asgi:app`` (or ``uvicorn streamzy.asgi:app``).

Settings come from the environment and ``.env``; nothing is generated here.
"""

from streamzy.app import create_app

app = create_app()
