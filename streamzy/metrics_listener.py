"""The separate metrics listener (STREAMZY_METRICS_BIND): prometheus_client's own HTTP
server, in a daemon thread, serving this app's registry and nothing else.

A thread, not a second ASGI server on the event loop: a scrape then never waits for (nor
delays) chat work, and the library's server is the one it documents and tests. It binds in
``start`` (so a port in use refuses the start instead of failing later) and ``stop`` shuts
it down off the loop. The readings it takes at scrape time are lengths and attributes, safe
to read from another thread. It answers every path with the metrics: bind it where only
Prometheus reaches it (127.0.0.1 or a private interface), never to the chat's public side.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from streamzy.config import metrics_address

log = logging.getLogger("streamzy.metrics")
STOP_SECONDS = 5.0


class MetricsListener:
    def __init__(self, bind: str, registry: CollectorRegistry | None) -> None:
        self.bind = bind
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The bound port (the configured one, or the system's pick for port 0)."""
        return None if self._server is None else int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve; OSError (address in use, not ours) when it cannot bind."""
        if not self.bind or self._registry is None or self._server is not None:
            return
        host, port = metrics_address(self.bind)
        self._server, self._thread = start_http_server(port, host, self._registry)
        log.info("metrics on http://%s:%s/metrics", host, self.port)

    async def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        try:  # shutdown() waits for the serving loop to notice (up to its 0.5 s poll)
            async with asyncio.timeout(STOP_SECONDS):
                await asyncio.to_thread(server.shutdown)
        except TimeoutError:
            log.warning("the metrics listener did not stop in time")
        server.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join, 1.0)
