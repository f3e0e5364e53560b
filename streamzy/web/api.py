"""The JSON API for bots and scripts (/api/v1, Bearer bot token) and its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints
from quart import Blueprint, Response, g, jsonify

from streamzy import wire
from streamzy.guards.validation import ClientMsgId, MessageText, StrictModel
from streamzy.services.errors import RateLimited
from streamzy.services.message_history import MessageHistory
from streamzy.services.message_writer import Sender
from streamzy.services.posting import MessagePosting
from streamzy.services.rooms import RoomInfo, Rooms
from streamzy.web.current import info
from streamzy.web.parsing import json_model, query_model
from streamzy.web.policy import bot_token, csrf_exempt, limited, public

NO_COOKIES = "bearer-token only: browsers cannot attach it, so there is nothing to forge"


class PostMessage(StrictModel):
    client_msg_id: ClientMsgId
    text: MessageText


class HistoryQuery(StrictModel):
    before_seq: Annotated[str, StringConstraints(max_length=18, pattern=r"^\d*$")] = ""
    limit: Annotated[str, StringConstraints(max_length=3, pattern=r"^\d*$")] = ""


class MessageOut(StrictModel):
    id: int
    room: int
    seq: int
    sender: dict[str, Any]
    client_msg_id: str
    text: str
    unreadable: bool
    created_at: str


class Ack(StrictModel):
    ok: bool
    id: int
    seq: int
    room: int
    duplicate: bool


class ErrorOut(StrictModel):
    ok: bool = False
    code: str
    message: str


def _schema(model: type[StrictModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Streamzy bot API", "version": "1"},
    "components": {
        "securitySchemes": {"bot": {"type": "http", "scheme": "bearer",
                                    "description": "A bot token (szb_...), shown once."}},
        "schemas": {"PostMessage": _schema(PostMessage), "Message": _schema(MessageOut),
                    "Ack": _schema(Ack), "Error": _schema(ErrorOut)},
    },
    "security": [{"bot": []}],
    "paths": {
        "/api/v1/rooms": {"get": {"summary": "Rooms this bot may use",
                                  "responses": {"200": {"description": "rooms"}}}},
        "/api/v1/rooms/{room_id}/messages": {
            "parameters": [{"name": "room_id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "get": {"summary": "History, oldest first",
                    "parameters": [
                        {"name": "before_seq", "in": "query", "schema": {"type": "integer"}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "maximum": 100}}],
                    "responses": {"200": {"description": "messages"}}},
            "post": {"summary": "Send a message (idempotent per client_msg_id)",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/PostMessage"}}}},
                     "responses": {
                         "201": {"description": "stored", "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/Ack"}}}},
                         "200": {"description": "a retry of a stored message"},
                         "400": {"description": "invalid or blocked"},
                         "401": {"description": "no or bad token"},
                         "403": {"description": "not allowed in that room"},
                         "429": {"description": "rate limited (retry_after)"}}},
        },
    },
}


def blueprint(*, rooms: Rooms, history: MessageHistory, posting: MessagePosting) -> Blueprint:
    bp = Blueprint("api", __name__)

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
        limit = min(100, max(1, int(query.limit or 50)))
        before = int(query.before_seq) if query.before_seq else None
        found, has_more = await history.page(room.id, before, limit, info())
        return jsonify({"ok": True, "room": room.id, "messages": wire.messages(found),
                        "has_more": has_more})

    @bp.post("/api/v1/rooms/<id:room_id>/messages")
    @bot_token
    @csrf_exempt(NO_COOKIES)
    @limited("api")
    async def post_message(room_id: int) -> tuple[Response, int]:
        body = await json_model(PostMessage)
        room = await rooms.resolve(room_id)
        sender = Sender(g.bot.user_id, g.bot.username, g.bot.display_name, True)
        try:  # the same use case as the socket's message event: membership, limit, audit
            result = await posting.send(sender, room, body.client_msg_id, body.text, info(),
                                        on="api")
        except RateLimited as exc:
            return jsonify(wire.error("rate_limited", exc.message,
                                      retry_after=round(exc.retry_after, 1))), 429
        return jsonify(wire.ack(result, room.id)), 200 if result.duplicate else 201

    @bp.get("/openapi.json")
    @public
    @limited("pages")
    async def openapi() -> Response:
        return jsonify(OPENAPI)

    return bp
