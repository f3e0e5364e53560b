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

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from streamzy.storage.db import is_unavailable

if TYPE_CHECKING:
    from streamzy.realtime.events import ChatEvents

log = logging.getLogger("streamzy.realtime")


class SessionSweeper:
    def __init__(self, events: ChatEvents, interval: float) -> None:
        self._events = events
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> None:
        events = self._events
        svc = events.svc
        now = svc.clock.now()
        connections = events.connections()
        sessions = {p.ref_id for _, p in connections if p.kind == "user"}
        tokens = {p.ref_id for _, p in connections if p.kind == "bot"}
        due = events.take_due_touches()
        try:
            alive = await svc.sessions.check_many(sessions, touch=due)
        except BaseException:
            events.defer_touches(due)  # not written: the next sweep or check writes them
            raise
        valid_tokens = await svc.bots.valid_among(tokens) if tokens else set()
        for sid, principal in connections:
            if principal.kind == "user":
                seen = alive.get(principal.ref_id)
                if seen is not None:  # ended ones were dropped by the session listeners
                    events.mark_checked(sid, now, seen)
            elif principal.ref_id in valid_tokens:
                events.mark_checked(sid, now, now)
            else:
                await events.drop(sid, "token_revoked")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the per-event checks remain the fallback
                if is_unavailable(exc):
                    log.warning("session sweep: database unavailable")
                else:
                    log.exception("session sweep failed")

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="session-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
