"""create_app(settings) -> the ASGI app: Quart + Socket.IO behind the security middleware."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

import socketio
from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart

from streamzy.clock import Clock
from streamzy.config import ConfigError, Settings, validate_for_start
from streamzy.guards.context import SYSTEM
from streamzy.guards.headers import SecurityHeadersMiddleware
from streamzy.metrics_listener import MetricsListener
from streamzy.periodic import Periodic, retry_quietly
from streamzy.realtime.assembly import Realtime
from streamzy.realtime.server import create_sio
from streamzy.self_probe import asgi_probe
from streamzy.services.attachments import ORPHAN_PURGE_SECONDS
from streamzy.storage.crypto import unusable_message
from streamzy.web.site import create_quart
from streamzy.wiring import Services, build_services

log = logging.getLogger("streamzy")


class StreamzyApp:
    """The outer ASGI callable; keeps handles to the parts tests and the CLI need."""

    def __init__(self, services: Services, quart: Quart, sio: socketio.AsyncServer,
                 realtime: Realtime, asgi: Any) -> None:
        self.services = services
        self.quart = quart
        self.sio = sio
        self.realtime = realtime
        self.sweeper = realtime.sweeper
        self.metrics_listener: MetricsListener | None = None
        self._asgi = asgi
        self.startup_error = ""
        # Called with the reason when the start is refused; the CLI's ASGI entry point
        # ends the process there (a server that merely stops would exit 0).
        self.on_refused: Callable[[str], None] | None = None

    async def drain(self) -> None:
        """Before shutting down: close live sockets so clients reconnect at once."""
        await self.realtime.drain()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> StreamzyApp:
    settings = settings or Settings()
    validate_for_start(settings)
    services = build_services(settings, clock)
    quart = create_quart(services)
    sio = create_sio(settings, services.audit_throttled)
    # STREAMZY_METRICS_BIND: the metrics on their own address, off the chat port.
    metrics_listener = MetricsListener(settings.metrics_bind, services.metrics.registry)
    realtime = Realtime(sio, services)
    # The retention purge runs in the server (a failed round is logged; the next one runs).
    retention = Periodic("retention-purge", settings.retention_interval_seconds,
                         lambda: services.retention.purge(SYSTEM),
                         retry_quietly("retention-purge"))
    # Uploads no message claimed within the hour (services/attachments.py) are removed.
    orphans = Periodic("attachment-orphans", ORPHAN_PURGE_SECONDS,
                       lambda: services.attachments.purge_orphans(SYSTEM),
                       retry_quietly("attachment-orphans"))
    # Sign-in steps nobody finished (a password typed, no code) are deleted once expired.
    challenges = Periodic("challenge-purge", settings.second_factor_seconds,
                          services.challenges.purge_expired, retry_quietly("challenge-purge"))

    # Every process follows the keyring epoch (rotations, shredding elsewhere) and re-checks
    # that every room key still unwraps, for /readyz.
    key_watch = Periodic("keyring-watch", settings.keyring_check_seconds,
                         services.key_watch.check_once, retry_quietly("keyring-watch"))

    def refuse(message: str) -> ConfigError:
        log.critical(message)
        streamzy_app.startup_error = message
        if streamzy_app.on_refused is not None:
            streamzy_app.on_refused(message)
        return ConfigError(message)

    @quart.before_serving
    async def _start() -> None:
        problem = services.db.write_problem()
        if problem is not None:
            raise refuse(f"refusing to start: {problem}")
        try:
            await services.key_watch.follow_epoch()
            unusable = await services.key_watch.check_keys()
        except Exception as exc:  # the database cannot be opened or read at all
            raise refuse(f"refusing to start: the database cannot be used "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        secrets = services.key_watch.unusable_secrets or 0
        if unusable or secrets:
            raise refuse(f"refusing to start: {unusable_message(unusable, secrets)}")
        if not settings.redis_url and not await services.db.claim_sole_server():
            raise refuse("refusing to start: another Streamzy process already serves this "
                         "database without Redis. Several processes or workers need "
                         "STREAMZY_REDIS_URL (sockets, rate limits and revocations are "
                         "shared through it); or stop the other process.")
        try:
            metrics_listener.start()
        except OSError as exc:
            raise refuse(f"refusing to start: STREAMZY_METRICS_BIND={settings.metrics_bind} "
                         f"cannot be bound ({exc.strerror or type(exc).__name__}); each "
                         "process needs its own metrics address") from None
        services.audit_log.start()
        key_watch.start()
        await realtime.start()
        retention.start()
        orphans.start()
        challenges.start()
        # Everything built so far lives as long as the process: move it out of the
        # collector's reach so full collections stay short (they paused ~100 ms under load).
        gc.collect()
        gc.freeze()

    @quart.after_serving
    async def _stop() -> None:
        await metrics_listener.stop()
        await retention.stop()
        await orphans.stop()
        await challenges.stop()
        await key_watch.stop()
        await realtime.stop()
        await services.close()
        await realtime.delivery.close()

    inner: Any = socketio.ASGIApp(sio, other_asgi_app=quart, socketio_path="socket.io")
    inner = SecurityHeadersMiddleware(inner, hsts=settings.production)
    if settings.trusted_hops:
        inner = ProxyFixMiddleware(inner, mode="legacy", trusted_hops=settings.trusted_hops)
    streamzy_app = StreamzyApp(services, quart, sio, realtime, inner)
    streamzy_app.metrics_listener = metrics_listener
    # The admin health page judges cookies and headers as this whole stack serves them.
    services.health.served = asgi_probe(inner, https=settings.cookie_secure)
    return streamzy_app
