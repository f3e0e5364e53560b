"""Downloads of exports: one's own messages, and (admins) a whole room, as JSON.

Both start with a POST carrying the CSRF token, not a GET link: an export is an audited
action that reads everything a person wrote, and a GET could be started by another site
(an image tag, a top-level navigation) in a signed-in browser, spending the export budget
and filling the audit trail with exports nobody asked for. The body is streamed from the
service's pages, never built whole in memory.
"""

from __future__ import annotations

from quart import Blueprint, Response

from streamzy.services.export import Export, Exports
from streamzy.web.current import info, session
from streamzy.web.policy import admin_only, limited, signed_in, step_up

# Quart's default (60 s) would cut a large export off mid-way.
DOWNLOAD_SECONDS = 3600


async def _bytes(export: Export):  # type: ignore[no-untyped-def]
    async for chunk in export.chunks:
        yield chunk.encode("utf-8")


def _download(export: Export) -> Response:
    response = Response(_bytes(export), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Export-Count"] = str(export.count)
    response.timeout = DOWNLOAD_SECONDS
    return response


def blueprint(*, exports: Exports) -> Blueprint:
    bp = Blueprint("exports", __name__)

    @bp.post("/account/export")
    @signed_in
    @step_up
    @limited("exports")
    async def export_mine() -> Response:
        # Always the signed-in person's own messages: nothing in the request names a user.
        return _download(await exports.for_user(session().user_id, info()))

    @bp.post("/admin/rooms/<id:room_id>/export")
    @admin_only
    @step_up
    @limited("exports")
    async def export_room(room_id: int) -> Response:
        return _download(await exports.for_room(room_id, info(),
                                                actor_id=session().user_id))

    return bp
