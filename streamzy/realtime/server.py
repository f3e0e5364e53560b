"""The Socket.IO server, built from settings: client manager, origin check, size limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import socketio

from streamzy.config import Settings
from streamzy.guards.context import RequestInfo

# Large enough for a 4,000-character message in 4-byte UTF-8 plus JSON framing; nowhere near
# engine.io's 1 MB default.
MAX_PACKET_BYTES = 32 * 1024
Audit = Callable[..., Awaitable[None]]
_pending: set[asyncio.Task[None]] = set()  # keep audit tasks referenced until they finish


def own_origin(environ: Mapping[str, Any]) -> str:
    """Our origin from the ASGI scope (scheme after ProxyFix) and the Host header."""
    scope = environ.get("asgi.scope") or {}
    scheme = str(scope.get("scheme", "http")).replace("ws", "http", 1)
    return f"{scheme}://{environ.get('HTTP_HOST', '')}".lower()


def origin_checker(allowed: list[str], audit: Audit) -> Callable[[str, Mapping[str, Any]], bool]:
    """Accept our own origin and the configured allowlist; audit every refusal.

    Unlike python-socketio's same-origin default, this never trusts a client-sent
    X-Forwarded-Host or X-Forwarded-Proto to describe "our" origin.
    """
    trusted = {o.lower() for o in allowed}

    def check(origin: str, environ: Mapping[str, Any]) -> bool:
        if origin.lower() in trusted or origin.lower() == own_origin(environ):
            return True
        info = RequestInfo.from_environ(environ)
        _pending.add(asyncio.get_running_loop().create_task(audit(
            f"origin:{info.ip}:{origin[:200]}", "socket_refused", info, None,
            reason="foreign_origin", origin=origin[:200])))
        for task in [t for t in _pending if t.done()]:
            _pending.discard(task)
        return False

    return check


def client_manager(settings: Settings) -> socketio.AsyncManager | None:
    """In-process by default; Redis pub/sub when STREAMZY_REDIS_URL is set."""
    if settings.redis_url:
        return socketio.AsyncRedisManager(settings.redis_url, channel="streamzy-socketio")
    return None


def create_sio(settings: Settings, audit_throttled: Audit) -> socketio.AsyncServer:
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=client_manager(settings),
        cors_allowed_origins=origin_checker(settings.allowed_origins, audit_throttled),
        cors_credentials=True,
        max_http_buffer_size=MAX_PACKET_BYTES,
        transports=["websocket", "polling"],
        logger=False,
        engineio_logger=False,
        always_connect=False,
    )
