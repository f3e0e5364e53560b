"""Who each live socket of this process speaks for, and ending one socket.

A socket is registered here once its connect was authenticated and forgotten when its
transport closes. Ending a socket acts on the transport (the delivery layer tells the client
why, then disconnects it, which also leaves every room); the bookkeeping follows from the
real disconnect, never the other way round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamzy.guards.context import RequestInfo
from streamzy.realtime.delivery import Delivery
from streamzy.services.message_writer import Sender

DROP_DELAY = 0.05  # lets an error ack already on its way reach the client first


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "bot"
    user_id: int
    username: str
    display_name: str
    ref_id: int  # session id, or bot token id
    info: RequestInfo
    last_seen: datetime  # the session's last recorded activity when it was resolved

    @property
    def is_bot(self) -> bool:
        return self.kind == "bot"

    @property
    def sender(self) -> Sender:
        return Sender(self.user_id, self.username, self.display_name, self.is_bot)

    @property
    def credential_key(self) -> str:
        """The revocation key of what authenticated this socket (session or bot token)."""
        return f"bot:{self.ref_id}" if self.is_bot else f"session:{self.ref_id}"

    def public(self) -> dict[str, Any]:
        return {"id": self.user_id, "username": self.username,
                "display_name": self.display_name, "bot": self.is_bot}


class Connections:
    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._principals: dict[str, Principal] = {}
        self._dropping: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, sid: str, principal: Principal) -> None:
        self._principals[sid] = principal

    def remove(self, sid: str) -> Principal | None:
        return self._principals.pop(sid, None)

    def get(self, sid: str) -> Principal | None:
        return self._principals.get(sid)

    def live(self, sid: str) -> bool:
        """Registered and not being dropped."""
        return sid in self._principals and sid not in self._dropping

    def snapshot(self) -> list[tuple[str, Principal]]:
        return list(self._principals.items())

    def __len__(self) -> int:
        return len(self._principals)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drop(self, sid: str, reason: str) -> None:
        """End one socket because its session or token ended: a moment later, so that an
        error ack in flight still reaches it. Acts on the transport even if this process
        already forgot the socket."""
        if sid not in self._dropping:
            self._dropping.add(sid)
            self.background(self._drop_soon(sid, reason))

    async def _drop_soon(self, sid: str, reason: str) -> None:
        try:
            await asyncio.sleep(DROP_DELAY)
            await self._delivery.session_ended(sid, reason)
        finally:
            self._dropping.discard(sid)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
