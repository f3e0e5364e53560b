"""create_app(settings) -> the ASGI app: Quart + Socket.IO behind the security middleware."""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

import socketio
from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart

from streamzy.clock import Clock
from streamzy.config import ConfigError, Settings, validate_for_start
from streamzy.guards.headers import SecurityHeadersMiddleware
from streamzy.realtime.delivery import Delivery
from streamzy.realtime.events import ChatEvents
from streamzy.realtime.server import ResilientRedisManager, create_sio
from streamzy.realtime.sweeper import SessionSweeper
from streamzy.storage.crypto import KeyUnavailable
from streamzy.web.site import create_quart
from streamzy.wiring import Services, build_services

log = logging.getLogger("streamzy")


class StreamzyApp:
    """The outer ASGI callable; keeps handles to the parts tests and the CLI need."""

    def __init__(self, services: Services, quart: Quart, sio: socketio.AsyncServer,
                 events: ChatEvents, asgi: Any) -> None:
        self.services = services
        self.quart = quart
        self.sio = sio
        self.events = events
        self._asgi = asgi
        self.sweeper: SessionSweeper | None = None
        self.startup_error = ""
        self.exit_on_refused_start = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> StreamzyApp:
    settings = settings or Settings()
    validate_for_start(settings)
    services = build_services(settings, clock)
    quart = create_quart(services)

    sio = create_sio(settings, services.audit_throttled)
    delivery = Delivery(sio)
    events = ChatEvents(sio, services, delivery, settings.redis_url)
    events.register()
    registry = events.registry
    sweeper = SessionSweeper(events, settings.session_sweep_seconds)

    async def sessions_ended(ids: list[int], reason: str) -> None:
        await registry.end([f"session:{i}" for i in ids], reason)

    async def token_revoked(token_id: int) -> None:
        await registry.end([f"bot:{token_id}"], "token_revoked")

    async def user_disabled(user_id: int) -> None:
        await registry.end([f"user:{user_id}"], "disabled")

    services.sessions.on_end(sessions_ended)
    services.bots.on_revoke(token_revoked)
    services.accounts.on_disabled(user_disabled)
    services.messages.on_stored(delivery.messages)
    if isinstance(sio.manager, ResilientRedisManager):
        sio.manager.on_recovered = registry.announce_resync

    def refuse(message: str) -> ConfigError:
        log.critical(message)
        streamzy_app.startup_error = message
        if streamzy_app.exit_on_refused_start:
            print(f"streamzy: {message}", file=sys.stderr, flush=True)
            logging.shutdown()
            os._exit(3)
        return ConfigError(message)

    @quart.before_serving
    async def _start() -> None:
        try:
            await services.keyring.verify_master()
        except KeyUnavailable as exc:
            raise refuse(f"refusing to start: {exc}") from None
        if not settings.redis_url and not await services.db.claim_sole_server():
            raise refuse("refusing to start: another Streamzy process already serves this "
                         "database without Redis. Several processes or workers need "
                         "STREAMZY_REDIS_URL (sockets, rate limits and revocations are "
                         "shared through it); or stop the other process.")
        await registry.start()
        sweeper.start()
        # Everything built so far lives as long as the process: move it out of the
        # collector's reach so full collections stay short (they paused ~100 ms under load).
        gc.collect()
        gc.freeze()

    @quart.after_serving
    async def _stop() -> None:
        await sweeper.stop()
        await registry.stop()
        await services.close()
        await delivery.close()

    inner: Any = socketio.ASGIApp(sio, other_asgi_app=quart, socketio_path="socket.io")
    inner = SecurityHeadersMiddleware(inner, hsts=settings.production)
    if settings.trusted_hops:
        inner = ProxyFixMiddleware(inner, mode="legacy", trusted_hops=settings.trusted_hops)
    streamzy_app = StreamzyApp(services, quart, sio, events, inner)
    streamzy_app.sweeper = sweeper
    return streamzy_app
