"""One query per interval keeps every socket's session check fresh.

Each event re-checks its socket's session when the last check is older than
RECHECK_SECONDS. Left to themselves, sockets that connected together go stale together:
every few seconds hundreds of single-row checks queued for the connection pool, under each
socket's event lock, and those sockets' messages waited behind them (the small-rooms p99).
The sweep reads all of this process's sessions and bot tokens in a few chunked queries,
ends what expired (its sockets are dropped through the session listeners), writes the
deferred activity touches in one UPDATE, and marks the rest checked. The per-event check
stays as the fallback for whatever the sweep has not covered.
"""

from __future__ import annotations

import logging

from streamzy.clock import Clock
from streamzy.guards.sessions import SessionStore
from streamzy.periodic import Periodic
from streamzy.realtime.freshness import SessionFreshness
from streamzy.realtime.principal import Connections
from streamzy.services.bots import Bots
from streamzy.services.errors import as_service_error

log = logging.getLogger("streamzy.realtime")


class SessionSweeper:
    def __init__(self, *, connections: Connections, freshness: SessionFreshness,
                 sessions: SessionStore, bots: Bots, clock: Clock, interval: float) -> None:
        self._connections = connections
        self._freshness = freshness
        self._sessions = sessions
        self._bots = bots
        self._clock = clock
        self.interval = interval
        self._periodic = Periodic("session-sweeper", interval, self.sweep_once, self._failed)

    async def sweep_once(self) -> None:
        now = self._clock.now()
        connections = self._connections.snapshot()
        sessions = {p.ref_id for _, p in connections if not p.is_bot}
        tokens = {p.ref_id for _, p in connections if p.is_bot}
        due = self._freshness.take_due_touches()
        try:
            alive = await self._sessions.check_many(sessions, touch=due)
        except BaseException:
            self._freshness.defer_touches(due)  # not written: the next sweep or check does
            raise
        valid_tokens = await self._bots.valid_among(tokens) if tokens else set()
        for sid, principal in connections:
            if not principal.is_bot:
                seen = alive.get(principal.ref_id)
                if seen is not None:  # ended ones were dropped through SessionsEnded
                    self._freshness.mark_checked(sid, now, seen)
            elif principal.ref_id in valid_tokens:
                self._freshness.mark_checked(sid, now, now)
            else:
                await self._connections.drop(sid, "token_revoked")

    def _failed(self, exc: Exception) -> None:
        # the per-event checks remain the fallback
        if as_service_error(exc) is not None:
            log.warning("session sweep: database unavailable")
        else:
            log.exception("session sweep failed", exc_info=exc)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
