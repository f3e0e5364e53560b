"""What the current request carries, for routes and hooks: client info, session, JSON or HTML."""

from __future__ import annotations

from quart import g, request

from streamzy.guards.context import RequestInfo
from streamzy.guards.sessions import ActiveSession


def info() -> RequestInfo:
    """The trusted client address, user agent and request id (for audit and services)."""
    return RequestInfo.from_scope(request.scope)


def session() -> ActiveSession:
    """The signed-in session (routes marked signed_in/admin_only always have one)."""
    current: ActiveSession | None = g.get("session")
    if current is None:
        raise RuntimeError("route reached without a session")
    return current


def wants_json() -> bool:
    """The API, and clients that ask for JSON rather than a page, get JSON errors."""
    accept = request.headers.get("Accept", "")
    return request.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept)
