"""Liveness, readiness and static files."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, jsonify, send_from_directory

from streamzy.web.current import services
from streamzy.web.policy import limited, public

ROOT = Path(__file__).resolve().parent.parent.parent
STATIC = ROOT / "static"

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
    ready = await services().db.ping()
    return jsonify({"ok": ready, "database": "up" if ready else "down"}), 200 if ready else 503


@bp.get("/static/<path:filename>")
@public
@limited("static")
async def static_file(filename: str) -> Response:
    response = await send_from_directory(STATIC, filename)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
