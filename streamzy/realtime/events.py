"""Socket.IO events: connect (session cookie or bot token), join/leave, message, history.

Socket.IO traffic never passes through Quart, so every guard is applied here explicitly:
the session is re-checked on every event, payloads are validated, rate limits counted, and
security-relevant refusals audited. Every failure is an ack ``{ok: false, code, message}``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Annotated, Any

import socketio
from pydantic import Field, StringConstraints

from streamzy.guards.context import RequestInfo
from streamzy.guards.csrf import tokens_match
from streamzy.guards.ratelimit import Decision
from streamzy.guards.sessions import TOUCH_EVERY, cookie_from_headers
from streamzy.guards.validation import InputError, StrictModel, parse
from streamzy.realtime.delivery import Delivery, room_channel
from streamzy.realtime.registry import SocketRegistry
from streamzy.realtime.room_index import RoomIndex
from streamzy.services.errors import ServiceError
from streamzy.services.messages import Sender
from streamzy.storage.db import is_unavailable
from streamzy.storage.models import Room

log = logging.getLogger("streamzy.realtime")
RoomRef = int | Annotated[str, StringConstraints(min_length=1, max_length=64)]
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                               pattern=r"^[A-Za-z0-9_.:-]+$")]
MISSED_LIMIT = 500
RECHECK_SECONDS = 5.0  # how stale a socket's session check may be
ROOM_CACHE_SECONDS = 30.0
STRIKE_WINDOW = 60.0  # seconds over which rate-limit refusals add up towards a disconnect


class JoinEvent(StrictModel):
    room: RoomRef
    since_seq: Annotated[int, Field(ge=0)] | None = None


class RoomEvent(StrictModel):
    room: RoomRef


class MessageEvent(StrictModel):
    room: RoomRef
    client_msg_id: ClientMsgId
    text: Annotated[str, StringConstraints(max_length=20_000)]


class HistoryEvent(StrictModel):
    room: RoomRef
    before_seq: Annotated[int, Field(ge=1)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class ReadEvent(StrictModel):
    room: RoomRef
    seq: Annotated[int, Field(ge=0)]


@dataclass
class Principal:
    """Who a socket speaks for; kept in the Socket.IO session."""

    kind: str  # "user" or "bot"
    user_id: int
    username: str
    display_name: str
    ref_id: int  # session id, or bot token id
    info: RequestInfo
    last_seen: datetime  # the session's last recorded activity when it was resolved

    @property
    def sender(self) -> Sender:
        return Sender(self.user_id, self.username, self.display_name, self.kind == "bot")

    def public(self) -> dict[str, Any]:
        return {"id": self.user_id, "username": self.username,
                "display_name": self.display_name, "bot": self.kind == "bot"}


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message, **extra}


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[..., Awaitable[dict[str, Any]]]


class ChatEvents:
    def __init__(self, sio: socketio.AsyncServer, services: Any, delivery: Delivery,
                 redis_url: str = "") -> None:
        self.sio = sio
        self.svc = services
        self.delivery = delivery
        self.registry = SocketRegistry(self.drop, redis_url, delivery.resync)
        self._principals: dict[str, Principal] = {}
        self._joined = RoomIndex()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropping: set[str] = set()
        self._strikes: dict[str, tuple[float, int]] = {}  # refusals per connection
        self._checked: dict[str, tuple[datetime, datetime]] = {}  # sid -> (checked, seen)
        self._room_cache: dict[int | str, tuple[float, Room]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._touch_due: set[int] = set()  # sessions with activity not yet written

    # -- wiring -----------------------------------------------------------------------
    def register(self) -> None:
        self.sio.on("connect", self.connect)
        self.sio.on("disconnect", self.disconnect)
        for name, handler in (("join", self.join), ("leave", self.leave),
                              ("message", self.message), ("history", self.history),
                              ("typing", self.typing), ("read", self.read),
                              ("rooms", self.rooms)):
            self.sio.on(name, self._guarded(name, handler))
        self.sio.on("*", self.unknown_event)

    def _guarded(self, name: str, handler: Handler) -> Callable[..., Awaitable[Any]]:
        @wraps(handler)
        async def run(sid: str, data: Any = None, *extra: Any) -> dict[str, Any]:
            principal = self._principals.get(sid)
            if principal is None:
                return error("not_authenticated", "Connect with a valid session first.")
            try:
                # python-socketio runs one connection's events concurrently. Taking this
                # lock first (tasks start in arrival order) processes them in the order the
                # client sent them; a message releases it once queued, so waiting for its
                # commit still overlaps with the next event.
                async with self._locks.setdefault(sid, asyncio.Lock()):
                    if extra:
                        raise InputError("invalid_payload",
                                         message="Send one object per event.")
                    if not await self._still_valid(sid, principal, touch=name == "message"):
                        return error("session_ended", "Your session has ended.")
                    budget = await self.svc.limiter.hit(
                        f"events:{sid}", self.svc.settings.rate("socket_events"))
                    if not budget.allowed:
                        return await self._throttled(sid, principal, "socket_events", budget)
                    result = await handler(sid, principal, data)
                if inspect.isawaitable(result):
                    result = await result
                return result  # type: ignore[no-any-return]
            except InputError as exc:
                return error(exc.code, exc.message, fields=exc.fields)
            except ServiceError as exc:
                return error(exc.code, exc.message)
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("socket event %s: database unavailable", name)
                    return error("unavailable", "The server cannot reach its database. "
                                 "Nothing was stored; retry shortly.")
                log.exception("socket event %s failed", name)
                return error("internal_error", "Something went wrong on our side.")
        return run

    async def unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        return error("unknown_event", "Unknown event.")

    # -- connection ---------------------------------------------------------------------
    async def connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        info = RequestInfo.from_environ(environ)
        try:
            try:
                principal = await self._authenticate(environ, auth, info)
            except Exception as exc:
                if isinstance(exc, Refused) or not is_unavailable(exc):
                    raise
                raise Refused("unavailable", "The server cannot reach its database.") from None
        except Refused as exc:
            await self.svc.audit("socket_refused", info, None, reason=exc.code)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.code, {"code": exc.code, "message": exc.message}) from None
        self._principals[sid] = principal
        # Just resolved: the first events need no check of their own (sockets that connect
        # together would otherwise all re-read their sessions at once).
        self._checked[sid] = (self.svc.clock.now(), principal.last_seen)
        key = f"session:{principal.ref_id}" if principal.kind == "user" \
            else f"bot:{principal.ref_id}"
        self.registry.add(sid, key, f"user:{principal.user_id}")
        await self.sio.enter_room(sid, f"u:{principal.user_id}")

    async def _authenticate(self, environ: dict[str, Any], auth: Any,
                            info: RequestInfo) -> Principal:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None:
            bot = await self.svc.bots.resolve(token if isinstance(token, str) else None)
            if bot is None:
                raise Refused("invalid_token", "The bot token is not valid.")
            return Principal("bot", bot.user_id, bot.username, bot.display_name, bot.token_id,
                             info, self.svc.clock.now())
        scope = environ.get("asgi.scope") or {}
        cookie = cookie_from_headers(scope.get("headers"),
                                     self.svc.settings.session_cookie_name)
        if not cookie:
            raise Refused("not_authenticated", "Sign in first.")
        resolution = await self.svc.sessions.resolve(cookie)
        session = resolution.session
        if session is None:
            raise Refused("session_expired" if resolution.reason in ("idle", "absolute")
                          else "not_authenticated", "Your session is not valid. Sign in again.")
        if session.must_change_password:
            raise Refused("password_change_required", "Change your password first.")
        if environ.get("HTTP_ORIGIN"):
            # A browser: besides the Origin check, it must show the page's CSRF token, so
            # a connection can only come from a page we served to this session.
            given = auth.get("csrf") if isinstance(auth, dict) else None
            if not tokens_match(session.csrf_token, given if isinstance(given, str) else None):
                raise Refused("csrf_failed", "Reload the page and try again.")
        return Principal("user", session.user_id, session.username, session.display_name,
                         session.id, info, session.last_seen_at)

    # -- session freshness (kept up by realtime.sweeper; these are the fallback) ----------
    def connections(self) -> list[tuple[str, Principal]]:
        return list(self._principals.items())

    def mark_checked(self, sid: str, at: datetime, last_seen: datetime) -> None:
        if sid in self._principals and sid not in self._dropping:
            self._checked[sid] = (at, last_seen)

    def take_due_touches(self) -> set[int]:
        due, self._touch_due = self._touch_due, set()
        return due

    def defer_touches(self, due: set[int]) -> None:
        self._touch_due |= due

    async def _still_valid(self, sid: str, principal: Principal, *, touch: bool) -> bool:
        """Re-check the session or token, from the database at most every few seconds.

        Logout, disable and revoke are pushed to the socket at once (registry); this check
        catches expiry and anything a lost push missed, within RECHECK_SECONDS. Activity
        (``touch``) inside a fresh check is written later, by the sweep or the next check.
        """
        now = self.svc.clock.now()
        cached = self._checked.get(sid)
        if cached is not None:
            checked_at, last_seen = cached
            if (now - checked_at).total_seconds() < RECHECK_SECONDS:
                if touch and principal.kind == "user" and now - last_seen >= TOUCH_EVERY:
                    self._touch_due.add(principal.ref_id)
                return True
        if principal.kind == "bot":
            valid = await self.svc.bots.still_valid(principal.ref_id)
            reason = "token_revoked"
            last_seen = now
        else:
            if principal.ref_id in self._touch_due:
                self._touch_due.discard(principal.ref_id)
                touch = True
            resolution = await self.svc.sessions.check(principal.ref_id, touch=touch)
            valid = resolution.session is not None
            reason = resolution.reason
            last_seen = resolution.session.last_seen_at if resolution.session else now
        if not valid:
            self._checked.pop(sid, None)
            await self.drop(sid, reason)
            return False
        self._checked[sid] = (now, last_seen)
        return True

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_soon(self, sid: str, reason: str) -> None:
        try:
            await asyncio.sleep(0.05)
            await self.delivery.session_ended(sid, reason)
        finally:
            self._dropping.discard(sid)

    async def disconnect(self, sid: str, *args: Any) -> None:
        principal = self._principals.pop(sid, None)
        rooms = self._joined.remove(sid)
        self._strikes.pop(sid, None)
        self._checked.pop(sid, None)
        self._locks.pop(sid, None)
        self.registry.remove(sid)
        if principal is not None:
            for room_id in rooms:
                await self._announce_presence(room_id)

    async def drop(self, sid: str, reason: str) -> None:
        """End one socket: a moment later, so an error ack in flight still reaches it."""
        if sid in self._principals and sid not in self._dropping:
            self._dropping.add(sid)
            self._background(self._drop_soon(sid, reason))

    # -- rooms --------------------------------------------------------------------------
    async def _room(self, ref: int | str) -> Room:
        """Rooms are looked up on every event; their identity and key version rarely change."""
        now = self.svc.clock.now().timestamp()
        cached = self._room_cache.get(ref)
        if cached is not None and now - cached[0] < ROOM_CACHE_SECONDS:
            return cached[1]
        room = await self.svc.rooms.resolve(ref)
        if len(self._room_cache) > 10_000:
            self._room_cache.clear()
        self._room_cache[room.id] = self._room_cache[room.name] = (now, room)
        return room  # type: ignore[no-any-return]

    async def _member_room(self, principal: Principal, ref: int | str, event: str,
                           sid: str = "") -> Room:
        room = await self._room(ref)
        if self._joined.joined(sid, room.id):
            return room  # membership was checked when this connection joined
        if not await self.svc.rooms.is_member(principal.user_id, room.id):
            await self.svc.audit("room_access_denied", principal.info, principal.user_id,
                                 room_id=room.id, on=event)
            raise ServiceError("not_a_member", "You are not a member of this room.")
        return room

    async def rooms(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        views = await self.svc.rooms.visible(principal.user_id)
        if principal.kind == "bot":
            views = [v for v in views if v.member]
        return {"ok": True, "rooms": [v.public() for v in views]}

    async def join(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(JoinEvent, data)
        room = await self._room(event.room)
        try:
            await self.svc.rooms.join(principal.user_id, room,
                                      may_join_public=principal.kind == "user")
        except ServiceError:
            await self.svc.audit("room_access_denied", principal.info, principal.user_id,
                                 room_id=room.id, on="join")
            raise
        # Enter first, then read: a message committed in between arrives live and in the
        # missed list, and the client de-duplicates by sequence; none can fall in a gap.
        await self.sio.enter_room(sid, room_channel(room.id))
        self._joined.add(sid, room.id)
        if event.since_seq is None:
            missed, has_more = await self.svc.messages.history(room.id, None, 50, principal.info)
        else:
            missed, has_more = await self.svc.messages.since(room.id, event.since_seq,
                                                             MISSED_LIMIT, principal.info)
        await self._announce_presence(room.id)
        fresh = await self.svc.rooms.get(room.id)
        return {"ok": True, "room": {"id": room.id, "name": room.name, "topic": room.topic,
                                     "private": room.is_private,
                                     "last_seq": fresh.last_seq if fresh else room.last_seq},
                "messages": [m.payload() for m in missed], "has_more": has_more,
                "mode": "history" if event.since_seq is None else "since"}

    async def leave(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(RoomEvent, data)
        room = await self._room(event.room)
        # Leaving ends the membership, so every connection of this user here stops using it.
        for other in self._joined.members(room.id):
            who = self._principals.get(other)
            if who is not None and who.user_id == principal.user_id:
                await self.sio.leave_room(other, room_channel(room.id))
                self._joined.discard(other, room.id)
        if principal.kind == "user":
            await self.svc.rooms.leave(principal.user_id, room.id)
        await self._announce_presence(room.id)
        return {"ok": True}

    async def _announce_presence(self, room_id: int) -> None:
        seen: dict[int, dict[str, Any]] = {}
        for sid in self._joined.members(room_id):
            principal = self._principals.get(sid)
            if principal is not None:
                seen[principal.user_id] = principal.public()
        await self.delivery.presence(room_id, sorted(seen.values(),
                                                     key=lambda p: p["username"]))

    # -- messages -----------------------------------------------------------------------
    async def message(self, sid: str, principal: Principal, data: Any) -> Any:
        """Queue the message; the returned awaitable is the ack, after the commit."""
        event = parse(MessageEvent, data)
        room = await self._member_room(principal, event.room, "message", sid)
        rate_name = "bot_messages" if principal.kind == "bot" else "messages"
        decision = await self.svc.limiter.hit(f"msg:{principal.user_id}",
                                              self.svc.settings.rate(rate_name))
        if not decision.allowed:
            return await self._throttled(sid, principal, rate_name, decision)
        future = await self.svc.messages.submit(principal.sender, room, event.client_msg_id,
                                                event.text, principal.info)

        async def ack() -> dict[str, Any]:
            result = await future
            return {"ok": True, "id": result.id, "seq": result.seq, "room": room.id,
                    "duplicate": result.duplicate}

        return ack()

    async def _throttled(self, sid: str, principal: Principal, limit: str,
                         decision: Decision) -> dict[str, Any]:
        """Refuse one event; a client that keeps pushing past its limit is disconnected."""
        await self.svc.audit_throttled(f"{limit}:{principal.user_id}", "rate_limited",
                                       principal.info, principal.user_id, limit=limit)
        now = self.svc.clock.now().timestamp()
        first, strikes = self._strikes.get(sid, (now, 0))
        if now - first > STRIKE_WINDOW:
            first, strikes = now, 0
        strikes += 1
        self._strikes[sid] = (first, strikes)
        if strikes == self.svc.settings.flood_disconnect_after:
            await self.svc.audit("flood_disconnected", principal.info, principal.user_id,
                                 limit=limit, refused=strikes)
            self._background(self._kick_soon(sid))
        return error("rate_limited", "You are sending too fast.",
                     retry_after=round(decision.retry_after, 1))

    async def _kick_soon(self, sid: str) -> None:
        await asyncio.sleep(0.05)
        await self.delivery.kick(sid, "flooding",
                                 "Disconnected for sending too fast. Reconnect and slow down.")

    async def history(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(HistoryEvent, data)
        room = await self._member_room(principal, event.room, "history", sid)
        messages, has_more = await self.svc.messages.history(room.id, event.before_seq,
                                                             event.limit, principal.info)
        return {"ok": True, "room": room.id, "messages": [m.payload() for m in messages],
                "has_more": has_more}

    async def typing(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(RoomEvent, data)
        room = await self._room(event.room)
        if not self._joined.joined(sid, room.id):
            return error("not_joined", "Join the room first.")
        await self.delivery.typing(room.id, principal.public(), sid)
        return {"ok": True}

    async def read(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(ReadEvent, data)
        room = await self._member_room(principal, event.room, "read", sid)
        await self.svc.rooms.mark_read(principal.user_id, room.id, event.seq)
        return {"ok": True}

