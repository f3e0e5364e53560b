"""Posting a message: the one use case both edges call (Socket.IO ``message`` and the API).

Membership, the room's own rules (``can_post``: archived, muted, slow mode; see
``room_rules.RoomRules.check_can_post``), the sender's message budget (a refusal is
audited once per window) and then the writer, in that order, with the same limit and the
same audit whichever edge asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from streamzy.config import Rate
from streamzy.services.attachments import Attachments
from streamzy.services.errors import Invalid, RateLimited
from streamzy.services.message_writer import MessageWriter, Sender, SendResult
from streamzy.services.rooms import RoomInfo, Rooms

Audit = Callable[..., Awaitable[None]]
CanPost = Callable[[int, RoomInfo, Any], Awaitable[None]]  # (user id, room, info)


class Budget(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def retry_after(self) -> float: ...


class Limiter(Protocol):
    async def hit(self, key: str, rate: Rate, *, rule: str = "") -> Budget: ...


def message_limit(sender: Sender) -> str:
    """The name of the rate that governs this sender's messages."""
    return "bot_messages" if sender.is_bot else "messages"


class MessagePosting:
    def __init__(self, rooms: Rooms, writer: MessageWriter, limiter: Limiter,
                 rates: Callable[[str], Rate], audit_throttled: Audit,
                 can_post: CanPost | None = None,
                 attachments: Attachments | None = None) -> None:
        self._rooms = rooms
        self._attachments = attachments
        self._can_post = can_post
        self._writer = writer
        self._limiter = limiter
        self._rates = rates
        self._audit_throttled = audit_throttled

    async def spend(self, sender: Sender, info: Any) -> None:
        """Take one from the sender's message budget (messages, edits, deletes and
        reactions all spend it); RateLimited, audited once per window, when it is empty."""
        limit = message_limit(sender)
        decision = await self._limiter.hit(f"msg:{sender.user_id}", self._rates(limit),
                                           rule=limit)
        if not decision.allowed:
            await self._audit_throttled(f"{limit}:{sender.user_id}", "rate_limited", info,
                                        sender.user_id, limit=limit)
            raise RateLimited(limit, decision.retry_after)

    async def submit(self, sender: Sender, room: RoomInfo, client_msg_id: str, text: str,
                     info: Any, *, known_member: bool = False, on: str = "message",
                     reply_to: int | None = None,
                     attachments: Sequence[str] = ()) -> asyncio.Future[SendResult]:
        """Check and queue one message; the future resolves once it is durably stored.

        ``known_member`` skips the membership query when the caller already checked it
        (a socket that joined the room); ``on`` names the edge in the audit trail.
        ``attachments``: public ids of the sender's uploads this message carries.
        """
        if not known_member:
            await self._rooms.require_member(sender.user_id, room.id, info, on=on)
        if self._can_post is not None:
            await self._can_post(sender.user_id, room, info)
        await self.spend(sender, info)
        files = None
        if attachments:
            if self._attachments is None:
                raise Invalid("attachments_off", "This server takes no files.")
            files = await self._attachments.claim(sender.user_id, room.id, client_msg_id,
                                                  attachments)
        return await self._writer.submit(sender, room, client_msg_id, text, info,
                                         reply_to=reply_to, files=files)

    async def send(self, sender: Sender, room: RoomInfo, client_msg_id: str, text: str,
                   info: Any, *, on: str = "message", reply_to: int | None = None,
                   attachments: Sequence[str] = ()) -> SendResult:
        """``submit`` and wait for the commit (the JSON API's shape)."""
        return await (await self.submit(sender, room, client_msg_id, text, info, on=on,
                                        reply_to=reply_to, attachments=attachments))
