"""The public files under /static, served without a session or a database lookup.

The request hooks recognise ``STATIC_ENDPOINT`` and skip the session, the anonymous
cookie and the admin badge for it; only its own rate limit applies.
"""

from __future__ import annotations

from quart import Blueprint, Response, send_from_directory

from streamzy.assets import asset_path
from streamzy.web.policy import limited, public

STATIC = asset_path("static")
STATIC_ENDPOINT = "static_files.static_file"
CACHE_CONTROL = "public, max-age=3600"


def blueprint() -> Blueprint:
    bp = Blueprint("static_files", __name__)

    @bp.get("/static/<path:filename>")
    @public
    @limited("static")
    async def static_file(filename: str) -> Response:
        response = await send_from_directory(STATIC, filename)
        response.headers["Cache-Control"] = CACHE_CONTROL
        return response

    return bp
