"""The chat edge: one python-socketio namespace whose ``trigger_event`` runs every guard.

Socket.IO traffic never passes through Quart, so the guards are applied here, in one place,
for every event a client sends: a registered connection, no reserved name, one event at a
time per connection in arrival order, a fresh session, the per-connection event budget, then
the handler; failures become an ack ``{ok: false, code, message}``, never a traceback.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from streamzy import logs
from streamzy.clock import Clock
from streamzy.config import Rate
from streamzy.guards.context import RequestInfo
from streamzy.guards.ratelimit import RateLimiter
from streamzy.guards.validation import InputError
from streamzy.metrics import Metrics
from streamzy.realtime.admission import Admission
from streamzy.realtime.flood import FloodGuard
from streamzy.realtime.freshness import SessionFreshness
from streamzy.realtime.handlers import Handler
from streamzy.realtime.handshake import Handshake, Refused
from streamzy.realtime.packets import BINARY, MALFORMED
from streamzy.realtime.presence import Presence
from streamzy.realtime.principal import Connections, Principal
from streamzy.realtime.registry import SocketRegistry
from streamzy.services.errors import RateLimited, ServiceError, as_service_error
from streamzy.wire import error

log = logging.getLogger("streamzy.realtime")
Audit = Callable[..., Awaitable[None]]

# Names a client must never send: the lifecycle events python-socketio raises itself, and
# the events only the server emits. A client packet using one is refused and audited.
LIFECYCLE = frozenset({"connect", "disconnect"})
SERVER_ONLY = frozenset({"connect_error", "session_ended", "kicked", "presence", "resync",
                         "restart", "message_changed", "activity", "notify", "removed",
                         "standing", "room_state"})


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(self, *, handlers: dict[str, Handler], handshake: Handshake,
                 connections: Connections, freshness: SessionFreshness, presence: Presence,
                 flood: FloodGuard, registry: SocketRegistry, admission: Admission,
                 caps: dict[str, int], limiter: RateLimiter, event_rate: Rate,
                 clock: Clock, audit: Audit, audit_throttled: Audit,
                 metrics: Metrics | None = None) -> None:
        super().__init__("/")
        self._metrics = metrics or Metrics()
        self._handlers = handlers
        self._handshake = handshake
        self._connections = connections
        self._freshness = freshness
        self._presence = presence
        self._flood = flood
        self._registry = registry
        self._admission = admission
        self._caps = caps  # live sockets per account and process: {"user": n, "bot": n}
        self._limiter = limiter  # each connection's event budget, keyed events:SID
        self._event_rate = event_rate
        self._clock = clock
        self._audit = audit
        self._audit_throttled = audit_throttled
        self._order: dict[str, asyncio.Lock] = {}  # per connection: events in arrival order

    async def trigger_event(self, event: str, *args: Any) -> Any:
        sid = args[0] if args else ""
        if event in LIFECYCLE and not self._sent_by_client(sid):
            if event == "connect":
                return await self._connect(sid, args[1] if len(args) > 1 else {},
                                           args[2] if len(args) > 2 else None)
            return await self._disconnect(sid)
        if event in LIFECYCLE or event in SERVER_ONLY:
            try:
                return await self._reserved(sid, event)
            except Exception:
                log.exception("refusing a reserved event failed")
                return error("reserved_event", "That event name is reserved.")
        if event in (MALFORMED, BINARY):
            return await self._guarded(event, self._bad_packet, sid, (event,))
        handler = self._handlers.get(event)
        if handler is None:
            return error("unknown_event", "Unknown event.")
        if event == "message":
            return await self._message(handler, sid, args[1:])
        return await self._guarded(event, handler, sid, args[1:])

    async def _message(self, handler: Handler, sid: str, args: tuple[Any, ...]) -> Any:
        """A send: its ack (after the commit), counted as stored latency or as refused."""
        arrived = time.perf_counter()
        ack = await self._guarded("message", handler, sid, args)
        if isinstance(ack, dict) and ack.get("ok") is False:
            self._metrics.message_refused(str(ack.get("code", "")))
        else:
            self._metrics.ack(time.perf_counter() - arrived)
        return ack

    def _sent_by_client(self, sid: str) -> bool:
        """python-socketio raises connect and disconnect while the socket is connecting or
        disconnecting; a packet that names them arrives while it is fully connected."""
        return bool(self.server.manager.is_connected(sid, self.namespace))

    async def _reserved(self, sid: str, event: str) -> dict[str, Any]:
        principal = self._connections.get(sid)
        await self._audit_throttled(
            f"reserved:{sid}", "socket_reserved_event",
            principal.info if principal else RequestInfo(),
            principal.user_id if principal else None, name=event[:64])
        return error("reserved_event", "That event name is reserved.")

    async def _bad_packet(self, sid: str, principal: Principal, marker: Any) -> dict[str, Any]:
        """A packet GuardedPacket could not accept: refused, audited once per window."""
        binary = marker == BINARY
        await self._audit_throttled(f"bad-packet:{sid}", "socket_bad_packet", principal.info,
                                    principal.user_id, kind="binary" if binary else "malformed")
        if binary:
            return error("binary_not_supported", "Binary packets are not accepted.")
        raise InputError("invalid_payload", message="The packet could not be read.")

    # -- connection lifecycle ------------------------------------------------------------
    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        info = RequestInfo.from_environ(environ)
        try:
            if self._admission.refusing(info.ip):
                raise Refused("rate_limited", "Too many refused connects. Wait a minute.")
            try:
                principal = await self._handshake.authenticate(environ, auth)
            except Refused:
                raise
            except Exception:  # a bug: logged, and the client is still answered, not left
                log.exception("socket connect failed")
                raise Refused("internal_error", "Something went wrong on our side.") from None
            cap = self._caps["bot" if principal.is_bot else "user"]
            if len(self._registry.sids(f"user:{principal.user_id}")) >= cap:
                raise Refused("too_many_connections",
                              f"This account already has {cap} live connections here.")
        except Refused as exc:
            self._admission.refused(info.ip)
            self._metrics.socket_refused(exc.code)
            # One row per address, reason and window: a loop of refusals cannot flood it.
            # The refusal goes out even when the row cannot be written (the database is what
            # failed, or its pool is exhausted): the JSON audit line is written regardless.
            try:
                await self._audit_throttled(f"refused:{info.ip}:{exc.code}", "socket_refused",
                                            info, None, reason=exc.code)
            except Exception:
                log.warning("socket refusal (%s) not stored in the audit table", exc.code)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.code, {"code": exc.code, "message": exc.message}) from None
        self._metrics.socket_connected()
        self.adopt(sid, principal)
        self._admission.authenticated(sid)
        await self.enter_room(sid, f"u:{principal.user_id}")

    def adopt(self, sid: str, principal: Principal) -> None:
        """Register an authenticated connection. Just resolved, so its first events need no
        check of their own (sockets that connect together would otherwise all re-read their
        sessions at once). Benchmarks use this to drive handlers without a transport."""
        self._connections.add(sid, principal)
        self._freshness.mark_checked(sid, self._clock.now(), principal.last_seen)
        self._registry.add(sid, principal.credential_key, f"user:{principal.user_id}")

    async def _disconnect(self, sid: str) -> None:
        principal = self._connections.remove(sid)
        self._presence.forget(sid, principal)
        self._flood.forget(sid)
        self._freshness.forget(sid)
        self._order.pop(sid, None)
        self._registry.remove(sid)
        self._limiter.forget(f"events:{sid}")

    def state_sizes(self) -> dict[str, int]:
        """Per-connection state held by this process (0 everywhere once all have left)."""
        return {"connections": len(self._connections), "freshness": len(self._freshness),
                "strikes": len(self._flood), "order": len(self._order),
                "rooms": self._presence.rooms_indexed(), "registry": self._registry.size(),
                "budgets": self._limiter.held("events:"),
                **self._admission.sizes()}

    # -- events ----------------------------------------------------------------------------
    async def _guarded(self, event: str, handler: Handler, sid: str,
                       args: tuple[Any, ...]) -> Any:
        principal = self._connections.get(sid)
        if principal is None:
            return error("not_authenticated", "Connect with a valid session first.")
        logs.bind_event(principal.info.request_id, principal.user_id)  # this event's task only
        try:
            # python-socketio runs one connection's events concurrently. Taking this lock
            # first (tasks start in arrival order) processes them in the order the client
            # sent them; a message releases it once queued, so waiting for its commit
            # still overlaps with the next event.
            async with self._order.setdefault(sid, asyncio.Lock()):
                if len(args) > 1:
                    raise InputError("invalid_payload", message="Send one object per event.")
                if not await self._freshness.still_valid(sid, principal, touch=event == "message",
                                                         drop=self._connections.drop):
                    return error("session_ended", "Your session has ended.")
                budget = await self._limiter.hit(f"events:{sid}", self._event_rate,
                                                 rule="socket_events")
                if not budget.allowed:
                    return await self._flood.refuse(sid, principal, "socket_events",
                                                    budget.retry_after)
                result = await handler(sid, principal, args[0] if args else None)
            if inspect.isawaitable(result):
                result = await result
            return result
        except InputError as exc:
            return error(exc.code, exc.message, fields=exc.fields)
        except RateLimited as exc:
            return await self._flood.refuse(sid, principal, exc.limit, exc.retry_after,
                                            audited=True, code=exc.code, message=exc.message)
        except Exception as exc:
            known = as_service_error(exc)
            if known is None:
                log.exception("socket event %s failed", event)
                return error("internal_error", "Something went wrong on our side.")
            if known.kind == "unavailable" and not isinstance(exc, ServiceError):
                log.warning("socket event %s: database unavailable", event)
                return error("unavailable", "The server cannot reach its database. "
                             "Nothing was stored; retry shortly.")
            return error(known.code, known.message)
