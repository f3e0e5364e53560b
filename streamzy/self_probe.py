"""The app asks itself for its sign-in page, in-process, through the whole ASGI stack
(ProxyFix, security headers, Socket.IO's router, Quart): what the admin health page judges
as "cookies and headers as served" without trusting a URL or a Host header to reach itself.
A proxy in front is judged by ``streamzy check-config --live --url https://...`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from streamzy.services.health_items import Served

PROBE_PATH = "/login"
PROBE_TIMEOUT = 10.0


def asgi_probe(app: Callable[..., Awaitable[None]], *, https: bool,
               host: str = "localhost") -> Callable[[], Awaitable[Served]]:
    scheme = "https" if https else "http"

    async def probe() -> Served:
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": scheme, "path": PROBE_PATH,
            "raw_path": PROBE_PATH.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", host.encode()), (b"user-agent", b"streamzy-health-check"),
                        (b"accept", b"text/html")],
            "client": ("127.0.0.1", 0), "server": (host, 443 if https else 80),
        }
        status = 0
        headers: list[tuple[str, str]] = []
        sent = False
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()  # the client goes once the response is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers.extend((bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                               for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished.set()

        async with asyncio.timeout(PROBE_TIMEOUT):
            await app(scope, receive, send)
        return Served(f"{scheme}://{host}{PROBE_PATH}", status, headers)

    return probe
