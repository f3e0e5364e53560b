"""The shapes of the events a client may send (validated with pydantic before any work).

Every integer has both bounds: ids and sequence numbers fit the database's BIGINT columns,
so an out-of-range number is answered ``invalid_input`` instead of failing in a query.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from streamzy.guards.validation import (
    INT64_MAX,
    Attachments,
    ClientMsgId,
    Line,
    MessageText,
    RowId,
    Seq,
    StrictModel,
)
from streamzy.services.content import has_control_chars

ROOM_NAME_MAX = 64


def _room_ref(value: Any) -> int | str:
    # One check with one message, instead of a union whose errors name each member.
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= INT64_MAX:
        return value
    # No control characters: no room name has one, and PostgreSQL text cannot hold NUL.
    if isinstance(value, str) and 1 <= len(value) <= ROOM_NAME_MAX \
            and not has_control_chars(value, multiline=False):
        return value
    raise ValueError(f"use a room id (1 to {INT64_MAX}) or a room name "
                     f"(1 to {ROOM_NAME_MAX} characters, no control characters)")


RoomRef = Annotated[Any, AfterValidator(_room_ref)]


class JoinRoom(StrictModel):
    room: RoomRef
    since_seq: Seq | None = None
    since_change: Seq | None = None


class InRoom(StrictModel):
    room: RoomRef


class SendMessage(StrictModel):
    room: RoomRef
    client_msg_id: ClientMsgId
    text: MessageText
    reply_to: RowId | None = None
    attachments: Attachments = []


class EditMessage(StrictModel):
    room: RoomRef
    id: RowId
    text: MessageText


class DeleteMessage(StrictModel):
    room: RoomRef
    id: RowId
    reason: Annotated[Line, Field(max_length=200)] = ""


class React(StrictModel):
    room: RoomRef
    id: RowId
    emoji: Annotated[str, Field(min_length=1, max_length=32)]


Username = Annotated[str, Field(min_length=1, max_length=64)]


class OpenDirect(StrictModel):
    users: Annotated[list[Username], Field(min_length=1, max_length=7)]


class Watch(StrictModel):
    rooms: Annotated[list[RowId], Field(max_length=500)]


class HistoryPage(StrictModel):
    room: RoomRef
    before_seq: Annotated[Seq, Field(ge=1)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class MarkRead(StrictModel):
    room: RoomRef
    seq: Seq
