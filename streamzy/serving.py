"""Serving Streamzy in this process with Hypercorn: the event loop hypercorn.toml names,
sockets closed before a shutdown (clients reconnect at once), and a refused start that ends
the process with a non-zero status a supervisor can see."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamzy.app import StreamzyApp

REFUSED = 3  # the exit status of a refused start (systemd: RestartPreventExitStatus=3)


def loop_factory(worker_class: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop hypercorn.toml asks for (uvloop where it is installed)."""
    if worker_class == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop  # type: ignore[no-any-return]
    return None


def exit_refused(message: str) -> None:
    """End the process at once with status 3: Hypercorn treats a failed startup as a clean
    exit (and respawns a worker that exits 0), which a supervisor reads as a stop."""
    print(f"streamzy: {message}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(REFUSED)


def serve_in_process(app: StreamzyApp, config_path: str, host: str, port: int,
                     env: str) -> int:
    """Serve until SIGTERM/SIGINT; the exit status (0, or 3 for a refused start)."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config.from_toml(config_path) if Path(config_path).exists() else Config()
    config.workers = 1  # serve() runs in this process anyway (hypercorn.toml says 0 for its CLI)
    config.bind = [f"{host}:{port}"]
    print(f"Streamzy serving on http://{config.bind[0]}  ({env})", flush=True)

    async def until_stopped() -> None:
        """SIGTERM or SIGINT: close the sockets first (clients reconnect and catch up
        elsewhere or here after the restart), then let Hypercorn shut down."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await app.drain()

    try:
        asyncio.run(serve(app, config, shutdown_trigger=until_stopped),  # type: ignore[arg-type]
                    loop_factory=loop_factory(config.worker_class))
    except Exception:  # a refused start (bad master key, second process without Redis)
        if not app.startup_error:
            raise
    if app.startup_error:
        print(f"streamzy: {app.startup_error}", file=sys.stderr)
        return REFUSED
    return 0
