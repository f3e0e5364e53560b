"""The JSON API for bots and scripts (/api/v1, Bearer bot token) and its OpenAPI schema."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import StringConstraints
from quart import Blueprint, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from streamzy import wire
from streamzy.guards.validation import InputError, StrictModel
from streamzy.metrics import Metrics
from streamzy.services.errors import RateLimited, as_service_error
from streamzy.services.message_changes import MessageChanges
from streamzy.services.message_history import MessageHistory
from streamzy.services.message_writer import Sender
from streamzy.services.posting import MessagePosting
from streamzy.services.rooms import RoomInfo, Rooms
from streamzy.web.current import info
from streamzy.web.openapi import HISTORY_MAX, AddReaction, EditMessage, PostMessage
from streamzy.web.openapi import build as build_openapi
from streamzy.web.parsing import json_model, query_model
from streamzy.web.policy import bot_token, csrf_exempt, limited, public

NO_COOKIES = "bearer-token only: browsers cannot attach it, so there is nothing to forge"


class HistoryQuery(StrictModel):
    before_seq: Annotated[str, StringConstraints(max_length=18, pattern=r"^\d*$")] = ""
    limit: Annotated[str, StringConstraints(max_length=3, pattern=r"^\d*$")] = ""


def too_fast(exc: RateLimited) -> tuple[Response, int]:
    """A 429 with the wait, in the body and as Retry-After."""
    refused = jsonify(wire.error(exc.code, exc.message,  # rate_limited, or slow_mode
                                 retry_after=round(exc.retry_after, 1)))
    refused.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return refused, 429


def _refusal_code(exc: Exception) -> str:
    """The code a refused API send answers with (for the metrics)."""
    if isinstance(exc, InputError):
        return exc.code
    if isinstance(exc, HTTPException):
        return f"http_{exc.code}"
    known = as_service_error(exc)
    return known.code if known is not None else "internal_error"


def blueprint(*, rooms: Rooms, history: MessageHistory, posting: MessagePosting,
              changes: MessageChanges, message_max_chars: int,
              metrics: Metrics | None = None) -> Blueprint:
    bp = Blueprint("api", __name__)
    refused = (metrics or Metrics()).message_refused
    document = build_openapi(message_max_chars=message_max_chars)

    def bot_sender() -> Sender:
        return Sender(g.bot.user_id, g.bot.username, g.bot.display_name, True)

    async def room_for_bot(room_id: int) -> RoomInfo:
        room = await rooms.resolve(room_id)
        await rooms.require_member(g.bot.user_id, room.id, info(), on="api")
        return room

    @bp.get("/api/v1/rooms")
    @bot_token
    @limited("api")
    async def list_rooms() -> Response:
        views = await rooms.visible(g.bot.user_id)
        return jsonify({"ok": True, "rooms": [v.public() for v in views if v.member]})

    @bp.get("/api/v1/rooms/<id:room_id>/messages")
    @bot_token
    @limited("api")
    async def room_history(room_id: int) -> Response:
        query = query_model(HistoryQuery)
        room = await room_for_bot(room_id)
        limit = min(HISTORY_MAX, max(1, int(query.limit or 50)))
        before = int(query.before_seq) if query.before_seq else None
        found, has_more = await history.page(room.id, before, limit, info())
        return jsonify({"ok": True, "room": room.id, "messages": wire.messages(found),
                        "has_more": has_more})

    @bp.post("/api/v1/rooms/<id:room_id>/messages")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api")
    async def post_message(room_id: int) -> tuple[Response, int]:
        try:
            body = await json_model(PostMessage)
            room = await rooms.resolve(room_id)
            # the same use case as the socket's message event: membership, limit, audit
            result = await posting.send(bot_sender(), room, body.client_msg_id, body.text,
                                        info(), on="api", reply_to=body.reply_to,
                                        attachments=body.attachments)
        except RateLimited as exc:
            refused(exc.code)
            return too_fast(exc)
        except Exception as exc:  # counted by the code the bot gets, then answered as usual
            refused(_refusal_code(exc))
            raise
        return jsonify(wire.ack(result, room.id)), 200 if result.duplicate else 201

    # Edits, deletes and reactions: the same use cases as the socket's events.
    @bp.patch("/api/v1/rooms/<id:room_id>/messages/<id:message_id>")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api")
    async def edit_message(room_id: int, message_id: int) -> Response | tuple[Response, int]:
        body = await json_model(EditMessage)
        room = await room_for_bot(room_id)
        try:
            return jsonify(wire.changed(await changes.edit(bot_sender(), room, message_id,
                                                           body.text, info())))
        except RateLimited as exc:
            return too_fast(exc)

    @bp.delete("/api/v1/rooms/<id:room_id>/messages/<id:message_id>")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api")
    async def delete_message(room_id: int, message_id: int) -> Response | tuple[Response, int]:
        room = await room_for_bot(room_id)
        try:
            return jsonify(wire.changed(await changes.delete(bot_sender(), room, message_id,
                                                             info())))
        except RateLimited as exc:
            return too_fast(exc)

    @bp.post("/api/v1/rooms/<id:room_id>/messages/<id:message_id>/reactions")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api")
    async def react(room_id: int, message_id: int) -> Response | tuple[Response, int]:
        body = await json_model(AddReaction)
        room = await room_for_bot(room_id)
        try:
            return jsonify(wire.changed(await changes.react(bot_sender(), room, message_id,
                                                            body.emoji, info())))
        except RateLimited as exc:
            return too_fast(exc)

    @bp.get("/openapi.json")
    @public
    @limited("pages")
    async def openapi() -> Response:
        return jsonify(document)

    return bp
