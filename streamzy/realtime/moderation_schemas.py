"""The shapes of the moderation events a client may send (validated before any work).

Durations and lengths come from the use cases' own limits, so the socket edge and the
manage pages refuse the same things.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from streamzy.guards.validation import Line, RowId, StrictModel, Text
from streamzy.realtime.schemas import RoomRef
from streamzy.services.moderation import (
    BAN_MAX_MINUTES,
    MUTE_MAX_MINUTES,
    REASON_MAX,
    SLOW_MODE_MAX_SECONDS,
)
from streamzy.services.reports import REASON_MAX as REPORT_REASON_MAX

Reason = Annotated[Line, StringConstraints(max_length=REASON_MAX)]


class ReportMessage(StrictModel):
    room: RoomRef
    id: RowId
    reason: Annotated[Text, StringConstraints(max_length=REPORT_REASON_MAX)] = ""


class OnMember(StrictModel):
    room: RoomRef
    user: RowId


class Mute(OnMember):
    minutes: Annotated[int, Field(ge=1, le=MUTE_MAX_MINUTES)]
    reason: Reason = ""


class Kick(OnMember):
    reason: Reason = ""


class Ban(OnMember):
    minutes: Annotated[int, Field(ge=1, le=BAN_MAX_MINUTES)] | None = None  # None: for good
    reason: Reason = ""


class SetRole(OnMember):
    role: Literal["owner", "moderator", "member"]


class SlowMode(StrictModel):
    room: RoomRef
    seconds: Annotated[int, Field(ge=0, le=SLOW_MODE_MAX_SECONDS)]


class Invite(StrictModel):
    room: RoomRef
    username: Annotated[Line, StringConstraints(min_length=1, max_length=64)]


class Archive(StrictModel):
    room: RoomRef
    archived: bool


class AboutRoom(StrictModel):
    room: RoomRef
