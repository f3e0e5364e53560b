"""The Socket.IO server, built from settings: client manager, origin check, size limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from streamzy.config import Settings
from streamzy.guards.circuit import Circuit
from streamzy.guards.context import RequestInfo
from streamzy.realtime.indexed_rooms import IndexedRooms
from streamzy.realtime.packets import GuardedPacket
from streamzy.realtime.subscription import Subscription

log = logging.getLogger("streamzy.realtime")
# The Engine.IO packet cap. Message text is bounded by STREAMZY_MESSAGE_MAX_CHARS alone, which
# the message service checks and answers (`too_long`); the cap only has to let every message
# within that limit reach it, in the widest encoding a client may use: python-socketio's
# client escapes non-ASCII (json ensure_ascii), 12 bytes per astral character. The headroom
# covers the framing (event name, room, client id, ack id: well under 1 KiB) and answers a
# text somewhat over the limit with `too_long` too; beyond it the connection is cut. At the
# default 4,000 characters: 52 KiB, far below engine.io's 1 MB default.
BYTES_PER_CHAR = 12
PACKET_HEADROOM = 4 * 1024


def max_packet_bytes(message_max_chars: int) -> int:
    """The largest packet accepted from a client, for a given message limit."""
    return BYTES_PER_CHAR * message_max_chars + PACKET_HEADROOM

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

    def check(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None:
            # No Origin header: not a browser (Engine.IO also asks this while building CORS
            # headers for such requests). Nothing to allow cross-origin, nothing to refuse.
            return False
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


class RedisManager(IndexedRooms, AsyncPubSubManager):  # type: ignore[misc]
    """Cross-process emits over Redis pub/sub, through python-socketio's documented
    extension point for pub/sub backends (``_publish`` and ``_listen``).

    Emits always reach this process's own clients first (the base class does that). The
    publish to other processes goes through a circuit breaker, so a hung or absent Redis
    costs one short timeout, not one per emit. The subscription notices when it was lost
    and, once back (within ~1 s), ``subscription.on_resubscribed`` tells this process's
    clients to catch up from the database. When this process's own publishing recovers,
    ``on_recovered`` asks every process to do the same (others may have missed our emits).
    """

    name = "streamzy-redis"

    def __init__(self, url: str) -> None:
        super().__init__(channel="streamzy-socketio")
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url, socket_connect_timeout=1)
        self.circuit = Circuit("Redis (Socket.IO fan-out)", timeout=1.0, cooldown=1.0)
        self.subscription = Subscription(url, self.channel)
        self.on_recovered: Callable[[], Awaitable[None]] | None = None
        self._publish_failed = False

    async def _publish(self, data: Any) -> Any:
        payload = self.json.dumps(data)
        try:
            result = await self.circuit.call(lambda: self._redis.publish(self.channel, payload))
        except Exception:  # local clients already have it; other processes will resync
            self._publish_failed = True
            return None
        if self._publish_failed:
            self._publish_failed = False
            log.warning("Redis publishing is back: asking every process's clients to resync")
            if self.on_recovered is not None:
                await self.on_recovered()
        return result

    async def _listen(self) -> AsyncIterator[bytes]:
        async for data in self.subscription.messages():
            yield data


class InlineEmitManager(IndexedRooms, socketio.AsyncManager):  # type: ignore[misc]
    """The in-process manager, minus one asyncio task per recipient of a room emit.

    python-socketio encodes a room message once and then creates a task per recipient that
    only appends to that socket's unbounded Engine.IO queue; each socket's own writer task
    does the sending. Appending in a loop does the same work without the task overhead,
    which dominated the CPU profile of a 200-member room.
    """

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None,
                   skip_sid: Any = None, callback: Any = None, to: Any = None,
                   **kwargs: Any) -> Any:
        room = to or room
        if callback is not None or namespace not in self.rooms:
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        payload = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace,
                                           data=[event, *payload]).encode()
        frames = [eio_packet.Packet(eio_packet.MESSAGE, p)
                  for p in (encoded if isinstance(encoded, list) else [encoded])]
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = self.server.eio.sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            for frame in frames:
                try:
                    await socket.send(frame)
                except Exception:  # one closing socket must not stop the others
                    log.debug("send to %s failed", sid, exc_info=True)
        return None


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """In-process by default; Redis pub/sub when STREAMZY_REDIS_URL is set."""
    if settings.redis_url:
        return RedisManager(settings.redis_url)
    return InlineEmitManager()


def create_sio(settings: Settings, audit_throttled: Audit) -> socketio.AsyncServer:
    return socketio.AsyncServer(
        async_mode="asgi",
        client_manager=client_manager(settings),
        cors_allowed_origins=origin_checker(settings.allowed_origins, audit_throttled),
        cors_credentials=True,
        max_http_buffer_size=max_packet_bytes(settings.message_max_chars),
        transports=["websocket", "polling"],
        logger=False,
        engineio_logger=False,
        always_connect=False,
        serializer=GuardedPacket,
    )
