"""Who may hold a socket before proving who they are: the unauthenticated stage.

An Engine.IO connection costs memory and a task before any Socket.IO connect arrives, and a
refused connect costs a database lookup and an audit row. So, per process:

- a connection that has not completed a Socket.IO connect within the deadline is closed;
- one address may hold only so many such connections at once (more are refused at the
  Engine.IO handshake, before any work);
- an address whose connects keep being refused is, for the rest of the minute, refused at
  once with ``rate_limited``, without a lookup; its refusals are audited once per window.

The hooks are python-socketio's public Engine.IO handlers (``eio.on``), wrapped so its own
connect and disconnect bookkeeping still runs first/last.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from streamzy.clock import Clock
from streamzy.guards.context import RequestInfo
from streamzy.metrics import Metrics
from streamzy.periodic import Periodic

log = logging.getLogger("streamzy.realtime")
Audit = Callable[..., Awaitable[None]]
REFUSAL_WINDOW = 60.0


class Admission:
    def __init__(self, sio: socketio.AsyncServer, clock: Clock, audit_throttled: Audit, *,
                 deadline: float, per_address: int, refusals_per_minute: int,
                 metrics: Metrics | None = None) -> None:
        self._sio = sio
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._audit_throttled = audit_throttled
        self.deadline = deadline
        self._per_address = per_address
        self._refusals_allowed = refusals_per_minute
        self._pending: dict[str, tuple[float, str]] = {}  # eio sid -> (opened at, address)
        self._pending_by_address: Counter[str] = Counter()
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (window start, n)
        self._periodic = Periodic("socket-admission", 1.0, self.expire_once)
        self.closing = False  # draining before a restart: new connections are refused
        self._engine_connect = sio.eio.handlers["connect"]
        self._engine_disconnect = sio.eio.handlers["disconnect"]
        sio.eio.on("connect", self._on_engine_connect)
        sio.eio.on("disconnect", self._on_engine_disconnect)

    # -- the unauthenticated stage -----------------------------------------------------------
    async def _on_engine_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        info = RequestInfo.from_environ(environ)
        if self.closing:
            self._metrics.socket_refused("closing")
            return False
        if self._pending_by_address[info.ip] >= self._per_address:
            self._metrics.socket_refused("too_many_unauthenticated")
            await self._audit_throttled(f"unauthenticated:{info.ip}", "socket_refused", info,
                                        None, reason="too_many_unauthenticated")
            return False
        self._pending[eio_sid] = (self._clock.now().timestamp(), info.ip)
        self._pending_by_address[info.ip] += 1
        return await self._engine_connect(eio_sid, environ)

    async def _on_engine_disconnect(self, eio_sid: str, *reason: Any) -> Any:
        self._settle(eio_sid)
        return await self._engine_disconnect(eio_sid, *reason)

    def authenticated(self, sid: str) -> None:
        """A Socket.IO connect succeeded: the connection leaves the unauthenticated stage."""
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            self._settle(eio_sid)

    def _settle(self, eio_sid: str) -> None:
        entry = self._pending.pop(eio_sid, None)
        if entry is not None:
            address = entry[1]
            self._pending_by_address[address] -= 1
            if self._pending_by_address[address] <= 0:
                del self._pending_by_address[address]

    async def expire_once(self) -> int:
        """Close the connections past the deadline; returns how many."""
        now = self._clock.now().timestamp()
        late = [eio_sid for eio_sid, (opened, _) in self._pending.items()
                if now - opened >= self.deadline]
        for eio_sid in late:
            self._settle(eio_sid)
            with contextlib.suppress(Exception):  # already gone: nothing to close
                await self._sio.eio.disconnect(eio_sid)
        return len(late)

    # -- refused connects --------------------------------------------------------------------
    def refusing(self, address: str) -> bool:
        """True while ``address`` is over its refused-connect budget for this window."""
        start, count = self._refusals.get(address, (0.0, 0))
        if self._clock.now().timestamp() - start > REFUSAL_WINDOW:
            return False
        return count >= self._refusals_allowed

    def refused(self, address: str) -> None:
        now = self._clock.now().timestamp()
        start, count = self._refusals.get(address, (now, 0))
        if now - start > REFUSAL_WINDOW:
            start, count = now, 0
        if len(self._refusals) > 50_000:
            self._refusals.clear()
        self._refusals[address] = (start, count + 1)

    def sizes(self) -> dict[str, int]:
        return {"pending": len(self._pending), "pending_addresses": len(self._pending_by_address)}

    # -- the periodic check ----------------------------------------------------------------
    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
