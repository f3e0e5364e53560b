"""Request-scoped helpers for the blueprints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import current_app, g, request

from streamzy.guards.context import RequestInfo
from streamzy.guards.sessions import ActiveSession

if TYPE_CHECKING:
    from streamzy.wiring import Services


def services() -> Services:
    return current_app.extensions["streamzy"]  # type: ignore[no-any-return]


def info() -> RequestInfo:
    return RequestInfo.from_scope(request.scope)


def session() -> ActiveSession:
    """The signed-in session (routes marked signed_in/admin_only always have one)."""
    current: ActiveSession | None = g.get("session")
    if current is None:
        raise RuntimeError("route reached without a session")
    return current


def wants_json() -> bool:
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept)
