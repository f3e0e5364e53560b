"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, jsonify

from streamzy.web.policy import limited, public


def blueprint(*, readiness: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]) -> Blueprint:
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
        ready, report = await readiness()
        return jsonify({"ok": ready, **report}), 200 if ready else 503

    return bp
