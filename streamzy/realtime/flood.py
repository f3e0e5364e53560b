"""Refusing over-limit events, and disconnecting a client that keeps pushing past them.

Each refusal is an error ack with ``retry_after`` (audited at most once per window); a
connection refused ``flood_disconnect_after`` times within STRIKE_WINDOW is kicked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from streamzy.clock import Clock
from streamzy.realtime.delivery import Delivery
from streamzy.realtime.principal import DROP_DELAY, Connections, Principal
from streamzy.wire import error

STRIKE_WINDOW = 60.0  # seconds over which refusals add up towards a disconnect
Audit = Callable[..., Awaitable[None]]


class FloodGuard:
    def __init__(self, clock: Clock, audit: Audit, audit_throttled: Audit,
                 connections: Connections, delivery: Delivery, disconnect_after: int) -> None:
        self._clock = clock
        self._audit = audit
        self._audit_throttled = audit_throttled
        self._connections = connections
        self._delivery = delivery
        self._disconnect_after = disconnect_after
        self._strikes: dict[str, tuple[float, int]] = {}  # sid -> (window start, refusals)

    def forget(self, sid: str) -> None:
        self._strikes.pop(sid, None)

    def __len__(self) -> int:
        return len(self._strikes)

    async def refuse(self, sid: str, principal: Principal, limit: str, retry_after: float, *,
                     audited: bool = False, code: str = "rate_limited",
                     message: str = "You are sending too fast.") -> dict[str, Any]:
        """The error ack for one refused event; counts a strike towards a disconnect.
        ``audited``: the use case already wrote the (throttled) rate_limited row; ``code``
        and ``message``: the use case's own words (a room's slow mode is ``slow_mode``)."""
        if not audited:
            await self._audit_throttled(f"{limit}:{principal.user_id}", "rate_limited",
                                        principal.info, principal.user_id, limit=limit)
        now = self._clock.now().timestamp()
        first, strikes = self._strikes.get(sid, (now, 0))
        if now - first > STRIKE_WINDOW:
            first, strikes = now, 0
        strikes += 1
        self._strikes[sid] = (first, strikes)
        if strikes == self._disconnect_after:
            await self._audit("flood_disconnected", principal.info, principal.user_id,
                              limit=limit, refused=strikes)
            self._connections.background(self._kick_soon(sid))
        return error(code, message, retry_after=round(retry_after, 1))

    async def _kick_soon(self, sid: str) -> None:
        await asyncio.sleep(DROP_DELAY)
        await self._delivery.kick(sid, "flooding",
                                  "Disconnected for sending too fast. Reconnect and slow down.")
