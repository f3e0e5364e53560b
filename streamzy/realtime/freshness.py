"""Is a socket's session (or bot token) still good? Checked from the database at most every
RECHECK_SECONDS per socket; the sweeper keeps every socket fresh in bulk, and this per-event
check is the fallback for whatever the sweep has not covered.

Logout, disable and revoke are pushed to the sockets at once (registry); this catches
expiry and anything a lost push missed. Chat activity inside a fresh check is not written
at once: it is remembered as a due "touch" and written by the sweep or the next check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from streamzy.clock import Clock
from streamzy.guards.sessions import TOUCH_EVERY, SessionStore
from streamzy.realtime.principal import Connections, Principal
from streamzy.services.bots import Bots

RECHECK_SECONDS = 5.0
Drop = Callable[[str, str], Awaitable[None]]


class SessionFreshness:
    def __init__(self, sessions: SessionStore, bots: Bots, clock: Clock,
                 connections: Connections) -> None:
        self._sessions = sessions
        self._bots = bots
        self._clock = clock
        self._connections = connections
        self._checked: dict[str, tuple[datetime, datetime]] = {}  # sid -> (checked, seen)
        self._touch_due: set[int] = set()  # sessions with activity not yet written

    def mark_checked(self, sid: str, at: datetime, last_seen: datetime) -> None:
        """Record a successful check (the sweep's, or the connect's own resolution)."""
        if self._connections.live(sid):  # never re-create state for a socket that left
            self._checked[sid] = (at, last_seen)

    def forget(self, sid: str) -> None:
        self._checked.pop(sid, None)

    def __len__(self) -> int:
        return len(self._checked)

    def take_due_touches(self) -> set[int]:
        due, self._touch_due = self._touch_due, set()
        return due

    def defer_touches(self, due: set[int]) -> None:
        self._touch_due |= due

    async def still_valid(self, sid: str, principal: Principal, *, touch: bool,
                          drop: Drop) -> bool:
        """True if the socket may go on; otherwise it is dropped (with the reason)."""
        now = self._clock.now()
        cached = self._checked.get(sid)
        if cached is not None:
            checked_at, last_seen = cached
            if (now - checked_at).total_seconds() < RECHECK_SECONDS:
                if touch and not principal.is_bot and now - last_seen >= TOUCH_EVERY:
                    self._touch_due.add(principal.ref_id)
                return True
        if principal.is_bot:
            valid = await self._bots.still_valid(principal.ref_id)
            reason = "token_revoked"
            last_seen = now
        else:
            if principal.ref_id in self._touch_due:
                self._touch_due.discard(principal.ref_id)
                touch = True
            resolution = await self._sessions.check(principal.ref_id, touch=touch)
            valid = resolution.session is not None
            reason = resolution.reason
            last_seen = resolution.session.last_seen_at if resolution.session else now
        if not valid:
            self._checked.pop(sid, None)
            await drop(sid, reason)
            return False
        self._checked[sid] = (now, last_seen)
        return True
