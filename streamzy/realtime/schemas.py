"""The shapes of the events a client may send (validated with pydantic before any work)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from streamzy.guards.validation import ClientMsgId, MessageText, StrictModel

RoomRef = int | Annotated[str, StringConstraints(min_length=1, max_length=64)]


class JoinRoom(StrictModel):
    room: RoomRef
    since_seq: Annotated[int, Field(ge=0)] | None = None


class InRoom(StrictModel):
    room: RoomRef


class SendMessage(StrictModel):
    room: RoomRef
    client_msg_id: ClientMsgId
    text: MessageText


class HistoryPage(StrictModel):
    room: RoomRef
    before_seq: Annotated[int, Field(ge=1)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class MarkRead(StrictModel):
    room: RoomRef
    seq: Annotated[int, Field(ge=0)]
