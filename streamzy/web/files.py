"""Attachments over HTTP: upload into a room, fetch a file or its thumbnail.

Browsers (session cookie, CSRF token header) and bots (Bearer token, /api/v1) call the same
service with the same checks. Uploads are checked (membership, room rules, the ``uploads``
budget) before a byte of the body is read. Files go out under their own headers, stricter
than the pages' (SECURITY.md, "Attachments"): the sniffed type, ``nosniff``, a download
(``Content-Disposition: attachment``) for anything but images, a CSP that allows nothing
and sandboxes the document (no script can run even if a browser rendered the bytes as a
page), same-origin only, never cached.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from quart import Blueprint, Response, g, jsonify

from streamzy.services.attachments import Attachments, FileOut, Uploader
from streamzy.services.errors import NotFound, RateLimited
from streamzy.services.rooms import Rooms
from streamzy.web.api import NO_COOKIES, too_fast
from streamzy.web.current import info, session
from streamzy.web.policy import bot_token, csrf_exempt, limited, signed_in
from streamzy.web.uploads import read_upload

FILE_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
# An image opened on its own is shown by the browser's image document, which loads the
# image again: in an opaque-origin sandbox that load fails Cross-Origin-Resource-Policy.
# ``allow-same-origin`` keeps the origin and nothing else: still no script, form, popup or
# plugin (never with allow-scripts), and the bytes are Pillow's re-encoding anyway.
IMAGE_CSP = FILE_CSP.replace("sandbox;", "sandbox allow-same-origin;")
_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ -]")


def disposition(out: FileOut, *, thumbnail: bool = False) -> str:
    """Images inline, everything else a download; the name as RFC 6266 says (an ASCII
    fallback, then the UTF-8 name percent-encoded)."""
    name = "thumbnail.webp" if thumbnail else out.name
    fallback = _ASCII_SAFE.sub("_", name)[:100] or "file"
    kind = "inline" if thumbnail or out.inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(out: FileOut, *, thumbnail: bool = False) -> Response:
    content_type = out.content_type
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    response = Response(out.data, status=200, content_type=content_type)
    response.headers["Content-Disposition"] = disposition(out, thumbnail=thumbnail)
    response.headers["Content-Security-Policy"] = IMAGE_CSP if thumbnail or out.inline \
        else FILE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def blueprint(*, rooms: Rooms, attachments: Attachments) -> Blueprint:
    bp = Blueprint("files", __name__)

    async def upload(uploader: Uploader, room_id: int, on: str) -> tuple[Response, int]:
        room = await rooms.resolve(room_id)
        try:
            await attachments.check_uploader(uploader, room, info(), on=on)
        except RateLimited as exc:
            return too_fast(exc)
        name, data = await read_upload(attachments.max_bytes)
        view = await attachments.upload(uploader, room, name, data, info())
        return jsonify({"ok": True, "attachment": view.public()}), 201

    async def fetch(user_id: int, public_id: str, thumbnail: bool) -> Response:
        if not _PUBLIC_ID.match(public_id):
            raise NotFound("file_not_found", "No such file.")
        out = await attachments.fetch(user_id, public_id, thumbnail=thumbnail)
        return file_response(out, thumbnail=thumbnail)

    @bp.post("/rooms/<id:room_id>/files")
    @signed_in
    @limited("uploads")
    async def upload_file(room_id: int) -> tuple[Response, int]:
        return await upload(Uploader(session().user_id), room_id, "upload")

    @bp.get("/files/<public_id>")
    @signed_in
    @limited("files")
    async def get_file(public_id: str) -> Response:
        return await fetch(session().user_id, public_id, False)

    @bp.get("/files/<public_id>/thumbnail")
    @signed_in
    @limited("files")
    async def get_thumbnail(public_id: str) -> Response:
        return await fetch(session().user_id, public_id, True)

    @bp.post("/api/v1/rooms/<id:room_id>/files")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api", "uploads")
    async def api_upload_file(room_id: int) -> tuple[Response, int]:
        return await upload(Uploader(g.bot.user_id, True), room_id, "api")

    @bp.get("/api/v1/files/<public_id>")
    @bot_token
    @limited("api")
    async def api_get_file(public_id: str) -> Response:
        return await fetch(g.bot.user_id, public_id, False)

    @bp.get("/api/v1/files/<public_id>/thumbnail")
    @bot_token
    @limited("api")
    async def api_get_thumbnail(public_id: str) -> Response:
        return await fetch(g.bot.user_id, public_id, True)

    return bp
