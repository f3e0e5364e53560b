"""Builds the chat edge from the services it uses and connects it to the event bus.

This is wiring, like ``streamzy.wiring``: each part below is constructed with the named
collaborators it needs, so their dependencies read at the top of their own modules.
"""

from __future__ import annotations

import asyncio
import logging

import socketio

from streamzy.metrics import Metrics
from streamzy.realtime.admission import Admission
from streamzy.realtime.conversation_handlers import ConversationHandlers
from streamzy.realtime.delivery import Delivery
from streamzy.realtime.flood import FloodGuard
from streamzy.realtime.freshness import SessionFreshness
from streamzy.realtime.handlers import ChatHandlers, Handler
from streamzy.realtime.handshake import Handshake
from streamzy.realtime.moderation_handlers import ModerationHandlers
from streamzy.realtime.namespace import ChatNamespace
from streamzy.realtime.presence import Presence
from streamzy.realtime.principal import Connections
from streamzy.realtime.registry import SocketRegistry
from streamzy.realtime.room_cache import RoomCache
from streamzy.realtime.room_gone import RoomGone
from streamzy.realtime.room_notices import RoomNotices
from streamzy.realtime.server import RedisManager
from streamzy.realtime.sweeper import SessionSweeper
from streamzy.services.events import (
    BotTokenRevoked,
    KeysChanged,
    MessageChanged,
    MessagesStored,
    RoomDeleted,
    SessionsEnded,
    UserDisabled,
)
from streamzy.wiring import Services

log = logging.getLogger("streamzy.realtime")
DRAIN_SECONDS = 3.0


def merged(*tables: dict[str, Handler]) -> dict[str, Handler]:
    """One event table from several; a name defined twice is a bug, refused at start."""
    out: dict[str, Handler] = {}
    for table in tables:
        twice = out.keys() & table.keys()
        if twice:
            raise ValueError(f"socket events defined twice: {sorted(twice)}")
        out.update(table)
    return out


class Realtime:
    def __init__(self, sio: socketio.AsyncServer, services: Services) -> None:
        settings = services.settings
        self._sio = sio
        metrics = services.metrics
        self.delivery = Delivery(sio, settings.presence_fanout_per_second, metrics)
        self.connections = Connections(self.delivery)
        self.registry = SocketRegistry(self.connections.drop, settings.redis_url,
                                       self.delivery.resync)
        self.freshness = SessionFreshness(services.sessions, services.bots, services.clock,
                                          self.connections)
        self.presence = Presence(sio, self.connections, self.delivery,
                                 interval=settings.presence_interval_seconds,
                                 list_limit=settings.presence_list_limit,
                                 typing_limit=settings.typing_room_limit,
                                 fanout=settings.presence_fanout_per_second,
                                 redis_url=settings.redis_url,
                                 dead_after=settings.presence_process_timeout_seconds)
        self._reconnect_rate = settings.reconnect_rate_per_second
        flood = FloodGuard(services.clock, services.audit, services.audit_throttled,
                           self.connections, self.delivery, settings.flood_disconnect_after)
        room_caches = [RoomCache(services.rooms, services.clock) for _ in range(2)]
        self.moderation = ModerationHandlers(
            room_cache=room_caches[0], room_roles=services.room_roles,
            moderation=services.moderation, reports=services.reports)
        self.handlers = handlers = ChatHandlers(rooms=services.rooms, history=services.history,
                                posting=services.posting,
                                room_cache=room_caches[1],
                                presence=self.presence, audit=services.audit,
                                direct=services.direct, rules=services.room_rules)
        conversations = ConversationHandlers(sio=sio, chat=handlers, rooms=services.rooms,
                                             changes=services.changes,
                                             direct=services.direct)
        self.admission = Admission(
            sio, services.clock, services.audit_throttled,
            deadline=settings.socket_auth_deadline_seconds,
            per_address=settings.socket_unauthenticated_per_address,
            refusals_per_minute=settings.socket_refusals_per_minute, metrics=metrics)
        self.handshake = Handshake(services.sessions, services.bots, services.clock,
                                   settings.session_cookie_name)
        self.namespace = ChatNamespace(
            handlers=merged(handlers.table(), conversations.table(), self.moderation.table()),
            handshake=self.handshake,
            connections=self.connections, freshness=self.freshness, presence=self.presence,
            flood=flood, registry=self.registry, admission=self.admission,
            caps={"user": settings.sockets_per_user, "bot": settings.sockets_per_bot},
            limiter=services.limiter,
            event_rate=settings.rate("socket_events"), clock=services.clock,
            audit=services.audit, audit_throttled=services.audit_throttled,
            metrics=metrics)
        sio.register_namespace(self.namespace)
        self._watch(metrics, sio, bool(settings.redis_url))
        self.sweeper = SessionSweeper(connections=self.connections, freshness=self.freshness,
                                      sessions=services.sessions, bots=services.bots,
                                      clock=services.clock,
                                      interval=settings.session_sweep_seconds)
        self._subscribe(services)

        async def keys_changed(_event: KeysChanged) -> None:
            for cache in room_caches:
                cache.forget()

        services.events.subscribe(KeysChanged, keys_changed)
        self.registry.on_resubscribed = self._sweep_now
        if isinstance(sio.manager, RedisManager):
            sio.manager.on_recovered = self.registry.announce_resync
            sio.manager.subscription.on_resubscribed = self.delivery.resync

    def _watch(self, metrics: Metrics, sio: socketio.AsyncServer, redis: bool) -> None:
        """What the metrics read at scrape time: live sockets, the Redis breakers."""
        connections = self.connections
        metrics.watch_sockets(lambda: len(connections))
        circuits = [("revocations", self.registry.circuit)]
        if isinstance(sio.manager, RedisManager):
            circuits.append(("fanout", sio.manager.circuit))
        if self.presence.shared is not None:
            circuits.append(("presence", self.presence.shared.circuit))
        if redis:  # without Redis there is no breaker to watch
            for name, circuit in circuits:
                metrics.watch_circuit(name, lambda c=circuit: not c.closed)

    def _subscribe(self, services: Services) -> None:
        registry = self.registry

        async def sessions_ended(event: SessionsEnded) -> None:
            await registry.end([f"session:{i}" for i in event.session_ids], event.reason)

        async def token_revoked(event: BotTokenRevoked) -> None:
            await registry.end([f"bot:{event.token_id}"], "token_revoked")

        async def user_disabled(event: UserDisabled) -> None:
            await registry.end([f"user:{event.user_id}"], "disabled")

        services.events.subscribe(SessionsEnded, sessions_ended)
        services.events.subscribe(BotTokenRevoked, token_revoked)
        services.events.subscribe(UserDisabled, user_disabled)
        services.events.subscribe(MessagesStored, self.delivery.messages_stored)
        services.events.subscribe(MessageChanged, self.delivery.message_changed)
        # Kicked, banned or gone: their sockets leave the room (every process), then hear why;
        # every process forgets its cached rules of a room whose moderation changed.
        notices = RoomNotices(self._sio, registry, self.presence)
        registry.on_leave_room = notices.take_out
        registry.on_room_changed = services.room_rules.forget
        notices.subscribe(services.events)
        # A shredded room: everyone in it hears so and leaves it, on every process.
        RoomGone(self._sio, registry, self.presence).subscribe(services.events)

        async def forget_room(event: RoomDeleted) -> None:
            services.room_rules.forget(event.room_id)

        services.events.subscribe(RoomDeleted, forget_room)

    async def drain(self) -> None:
        """Before a restart: say so, then close every Engine.IO connection of this process
        (a transport close, so clients reconnect by themselves) instead of leaving them open
        until the server's graceful timeout."""
        self.admission.closing = True
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await self.delivery.restarting(self.reconnect_spread())
                await asyncio.sleep(0.1)  # let the notice leave the send queues
                # python-engineio's disconnect() raises ValueError on an empty set of
                # connections (asyncio.wait of nothing): with nobody connected, nothing to do.
                if self._sio.eio.sockets:
                    await self._sio.eio.disconnect()
        except Exception as exc:
            log.warning("closing sockets before the restart did not finish (%s)",
                        type(exc).__name__)

    def reconnect_spread(self) -> float:
        """Seconds over which this process's clients should spread their reconnects: at
        the configured rate, at least 1 s and at most a minute."""
        return min(60.0, max(1.0, len(self.connections) / self._reconnect_rate))

    async def _sweep_now(self) -> None:
        """Revocations may have gone by while the subscription was lost: check at once."""
        try:
            await self.sweeper.sweep_once()
        except Exception:  # the periodic sweep and per-event checks remain
            log.warning("session sweep after Redis came back failed")

    async def start(self) -> None:
        await self.registry.start()
        self.sweeper.start()
        self.admission.start()
        await self.presence.start()

    async def stop(self) -> None:
        """Stop the background work (delivery is closed after the services, so the last
        committed batch still goes out)."""
        await self.sweeper.stop()
        await self.admission.stop()
        await self.presence.stop()
        await self.registry.stop()
        await self.connections.close()
