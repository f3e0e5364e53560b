"""The OpenAPI document of the bot API (/openapi.json): every route, every status it answers.

Built from the same pydantic models the API parses with and from the wire shapes it sends,
so the schema and the server agree (tests/web/test_openapi.py checks the numbers;
tests/web/test_openapi_fuzz.py runs schemathesis against it). The message length is the
configured ``message_max_chars``, not the transport bound of the body model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from streamzy.guards.validation import Attachments, ClientMsgId, MessageText, RowId, StrictModel
from streamzy.web.ids import DB_ID_MAX, DB_ID_MIN

HISTORY_MAX = 100
SEQ_MAX = 10**18 - 1  # before_seq takes at most 18 digits
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


class PostMessage(StrictModel):
    client_msg_id: ClientMsgId
    text: MessageText
    reply_to: RowId | None = None
    attachments: Attachments = []


class EditMessage(StrictModel):
    text: MessageText


class AddReaction(StrictModel):
    emoji: Annotated[str, Field(min_length=1, max_length=32)]


class Out(BaseModel):
    """A response shape: exactly these fields (drift fails the schema checks)."""

    model_config = ConfigDict(extra="forbid")


class Sender(Out):
    id: int | None
    username: str
    display_name: str
    bot: bool


class ReplyTo(Out):
    id: int
    seq: int
    sender: Sender | None
    text: str
    deleted: bool


class Reaction(Out):
    emoji: str
    count: int
    users: list[int]


class Message(Out):
    id: int
    room: int
    seq: int
    sender: Sender
    client_msg_id: str
    text: str
    unreadable: bool
    created_at: str
    edited_at: str | None
    deleted: bool
    reply_to: ReplyTo | None
    reactions: list[Reaction]
    mentions: list[int]
    mentions_room: bool
    change_seq: int


class Room(Out):
    id: int
    name: str
    topic: str
    private: bool
    last_seq: int
    member: bool
    unread: int
    kind: Literal["room", "dm"]
    title: str
    mentions: int
    archived: bool  # read-only: no new messages, edits or reactions
    role: Literal["owner", "moderator", "member"] | None  # the caller's; None outside


class RoomList(Out):
    ok: Literal[True]
    rooms: list[Room]


class History(Out):
    ok: Literal[True]
    room: int
    messages: list[Message]
    has_more: bool


class Ack(Out):
    ok: Literal[True]
    id: int
    seq: int
    room: int
    duplicate: bool


class Changed(Out):
    ok: Literal[True]
    id: int
    change_seq: int
    edited_at: str | None = None  # edits
    added: bool | None = None  # reactions: added (true) or taken back (false)


class Error(Out):
    ok: Literal[False]
    code: str
    message: str
    retry_after: float | None = None  # only on the per-bot message limit's 429


MODELS: tuple[type[BaseModel], ...] = (PostMessage, EditMessage, AddReaction, Sender, ReplyTo,
                                        Reaction, Message, Room, RoomList, History, Ack,
                                        Changed, Error)

ERRORS = {
    "400": "The request is invalid (parameters, body, or a message the policy blocks).",
    "401": "No bot token, or not a valid one.",
    "403": "Not allowed: the bot is not a member of that room, or the message is not its "
           "own (edits; deletes unless it moderates the room), or the edit window closed.",
    "404": "No such room or message (or an id outside 1..2^63-1).",
    "413": "The body is larger than the server accepts.",
    "409": "This client_msg_id was already used for another text or room: send a new id.",
    "415": "The body is not application/json.",
    "429": "Over a rate limit: wait Retry-After seconds.",
    "503": "Temporarily unavailable (the database): retry after Retry-After seconds.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _headers(status: str) -> dict[str, Any]:
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_HEADERS}
    if status in ("429", "503"):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return headers


def _responses(ok: dict[str, tuple[str, str]], errors: tuple[str, ...]) -> dict[str, Any]:
    responses = {status: {"description": description, "headers": _headers(status),
                          "content": _json(model)}
                 for status, (model, description) in ok.items()}
    for status in errors:
        responses[status] = {"description": ERRORS[status], "headers": _headers(status),
                             "content": _json("Error")}
    return responses


def _integer(description: str) -> dict[str, Any]:
    return {"description": description, "required": True,
            "schema": {"type": "integer", "minimum": 0}}


def build(*, message_max_chars: int) -> dict[str, Any]:
    """The document for this server's settings."""
    _, top = models_json_schema([(m, "validation") for m in MODELS],
                                ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top["$defs"]
    schemas["PostMessage"]["properties"]["text"]["maxLength"] = message_max_chars
    schemas["PostMessage"]["properties"]["text"]["description"] = (
        f"At most {message_max_chars} characters (STREAMZY_MESSAGE_MAX_CHARS); no control "
        "characters other than line breaks and tabs.")
    schemas["EditMessage"]["properties"]["text"]["maxLength"] = message_max_chars
    room_id = {"name": "room_id", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": DB_ID_MIN, "maximum": DB_ID_MAX}}
    message_id = {**room_id, "name": "message_id"}
    change_errors = ("400", "401", "403", "404", "413", "415", "429", "503")
    return {
        "openapi": "3.1.0",
        "info": {"title": "Streamzy bot API", "version": "1"},
        "components": {
            "securitySchemes": {"bot": {"type": "http", "scheme": "bearer",
                                        "description": "A bot token (szb_...), shown once."}},
            "schemas": schemas,
            "headers": {
                "RateLimit-Limit": _integer("Requests allowed per window (STREAMZY_RATE_API)."),
                "RateLimit-Remaining": _integer("Requests left before 429."),
                "RateLimit-Reset": _integer("Seconds until the full quota is back."),
                "Retry-After": _integer("Seconds to wait before retrying."),
            },
        },
        "security": [{"bot": []}],
        "paths": {
            "/api/v1/rooms": {"get": {
                "summary": "Rooms this bot may use",
                "responses": _responses({"200": ("RoomList", "The bot's rooms.")},
                                        ("401", "429", "503")),
            }},
            "/api/v1/rooms/{room_id}/messages": {
                "parameters": [room_id],
                "get": {
                    "summary": "History, oldest first",
                    "parameters": [
                        {"name": "before_seq", "in": "query", "required": False,
                         "description": "Only messages with a smaller sequence number.",
                         "schema": {"type": "integer", "minimum": 0, "maximum": SEQ_MAX}},
                        {"name": "limit", "in": "query", "required": False,
                         "description": f"At most this many (default 50, at most {HISTORY_MAX}).",
                         "schema": {"type": "integer", "minimum": 1, "maximum": HISTORY_MAX}},
                    ],
                    "responses": _responses({"200": ("History", "A page of messages.")},
                                            ("400", "401", "403", "404", "429", "503")),
                },
                "post": {
                    "summary": "Send a message (idempotent per client_msg_id)",
                    "requestBody": {"required": True, "content": _json("PostMessage")},
                    "responses": _responses(
                        {"201": ("Ack", "Stored."),
                         "200": ("Ack", "A retry of a stored message (duplicate: true).")},
                        ("400", "401", "403", "404", "409", "413", "415", "429", "503")),
                },
            },
            "/api/v1/rooms/{room_id}/messages/{message_id}": {
                "parameters": [room_id, message_id],
                "patch": {
                    "summary": "Edit the bot's own message (within the edit window)",
                    "requestBody": {"required": True, "content": _json("EditMessage")},
                    "responses": _responses({"200": ("Changed", "Edited.")}, change_errors),
                },
                "delete": {
                    "summary": "Delete a message: its text is destroyed, a tombstone stays",
                    "responses": _responses({"200": ("Changed", "Deleted.")},
                                            ("400", "401", "403", "404", "429", "503")),
                },
            },
            "/api/v1/rooms/{room_id}/messages/{message_id}/reactions": {
                "parameters": [room_id, message_id],
                "post": {
                    "summary": "Toggle the bot's reaction (an emoji) on a message",
                    "requestBody": {"required": True, "content": _json("AddReaction")},
                    "responses": _responses({"200": ("Changed", "Added or taken back.")},
                                            change_errors),
                },
            },
        },
    }
