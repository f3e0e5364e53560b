"""After-commit events: the one seam between the services and whoever reacts to them.

Services publish a typed event once their change has committed (a message stored, sessions
ended, a bot token revoked, a user disabled); the realtime layer subscribes and delivers.
A subscriber's failure is logged and never reaches the publisher: the change is already
durable, and one broken listener must not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamzy.services.message_state import StoredMessage

log = logging.getLogger("streamzy.events")


@dataclass(frozen=True)
class SessionsEnded:
    session_ids: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class BotTokenRevoked:
    token_id: int


@dataclass(frozen=True)
class UserDisabled:
    user_id: int


@dataclass(frozen=True)
class MemberRemoved:
    """Someone is no longer a member of a room (kicked, banned, left): their live sockets
    leave it, on every process."""

    room_id: int
    user_id: int
    reason: str


@dataclass(frozen=True)
class RoomDeleted:
    """A room or direct conversation was shredded: every socket in it, on every process,
    leaves it and hears ``removed {room, reason}``; its former members' pages drop it."""

    room_id: int
    member_ids: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class StandingChanged:
    """Someone's role or mute in a room changed (told to their own sockets)."""

    room_id: int
    user_id: int
    role: str
    muted_until: datetime | None


@dataclass(frozen=True)
class RoomStateChanged:
    """A room was archived or unarchived, or its slow mode changed (told to the room)."""

    room_id: int
    archived: bool
    slow_mode_seconds: int


@dataclass(frozen=True)
class MessagesStored:
    """One committed batch, in (room, seq) order."""

    messages: tuple[StoredMessage, ...]


@dataclass(frozen=True)
class MessageChanged:
    """A committed edit, delete or reaction: the message as it is now."""

    room_id: int
    change_seq: int
    kind: str  # "edit", "delete" or "react"
    message: StoredMessage


@dataclass(frozen=True)
class KeysChanged:
    """Room keys changed in some process (the keyring epoch moved): drop cached room key
    versions."""

    epoch: str


Handler = Callable[[Any], Awaitable[None]]


class EventBus:
    """In-process publish/subscribe by event type (Zulip's ``send_event``, in small)."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = {}

    def subscribe[E](self, kind: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def publish(self, event: object) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                await handler(event)
            except Exception:
                log.exception("handling %s failed", type(event).__name__)
