"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from quart import Blueprint, Response, jsonify

from streamzy.web.policy import limited, public


def blueprint(*, database_ready: Callable[[], Awaitable[bool]]) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    @public
    @limited("pages")
    async def healthz() -> Response:
        return jsonify({"ok": True})

    @bp.get("/readyz")
    @public
    @limited("pages")
    async def readyz() -> tuple[Response, int]:
        ready = await database_ready()
        return (jsonify({"ok": ready, "database": "up" if ready else "down"}),
                200 if ready else 503)

    return bp
