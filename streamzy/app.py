"""create_app(settings) -> the ASGI app: Quart + Socket.IO behind the security middleware."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypercorn.middleware import ProxyFixMiddleware
from quart import Quart

from streamzy.clock import Clock
from streamzy.config import Settings, validate_for_start
from streamzy.guards.headers import SecurityHeadersMiddleware
from streamzy.web import admin, apply, auth, health, hooks
from streamzy.wiring import Services, build_services

ROOT = Path(__file__).resolve().parent.parent


def create_quart(services: Services) -> Quart:
    settings = services.settings
    app = Quart(__name__, template_folder=str(ROOT / "templates"), static_folder=None)
    app.config.update(
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        MAX_FORM_PARTS=50,
        BODY_TIMEOUT=15,
        SECRET_KEY=settings.secret_key.get_secret_value(),
    )
    app.extensions["streamzy"] = services
    hooks.install(app)
    for blueprint in (health.bp, apply.bp, auth.bp, admin.bp):
        app.register_blueprint(blueprint)

    @app.after_serving
    async def _close() -> None:
        await services.close()

    return app


class StreamzyApp:
    """The outer ASGI callable; keeps handles to the parts tests and the CLI need."""

    def __init__(self, services: Services, quart: Quart, asgi: Any) -> None:
        self.services = services
        self.quart = quart
        self._asgi = asgi

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> StreamzyApp:
    settings = settings or Settings()
    validate_for_start(settings)
    services = build_services(settings, clock)
    quart = create_quart(services)
    inner: Any = quart
    inner = SecurityHeadersMiddleware(inner, hsts=settings.production)
    if settings.trusted_hops:
        inner = ProxyFixMiddleware(inner, mode="legacy", trusted_hops=settings.trusted_hops)
    return StreamzyApp(services, quart, inner)
