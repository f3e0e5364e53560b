"""Presence across processes: who is online in a room, counted in Redis.

Each process counts its own sockets (``roster.py``); when a person comes online in a room
on this process, or goes offline here, this tells Redis, which counts them once however
many processes have them. A change seen by the whole cluster (their first process, their
last) is reported back through ``on_change`` and goes into the room's next presence batch,
which the Socket.IO manager delivers to every process.

All Redis work runs in one task, in order, pipelined: a join storm costs one round trip
per few hundred joins, and an enter can never overtake the leave before it. Every change
is idempotent (``presence_scripts.py``), so after anything goes wrong (Redis away, hung or
restarted empty; this process paused past the heartbeat timeout) a resync makes Redis agree
with this process's sockets again, and the heartbeat sweep takes back what a crashed
process had counted. While Redis is away, join answers fall back to this process's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from streamzy.guards.circuit import Circuit
from streamzy.realtime import presence_scripts as lua

log = logging.getLogger("streamzy.presence")
BATCH = 500          # operations per pipeline
TIMEOUT = 1.0        # seconds for one pipeline round trip
Change = Callable[[int, int, dict[str, Any], bool], None]  # room, user, profile, online
Holding = Callable[[], list[tuple[int, int, dict[str, Any]]]]  # this process's (room, user)


@dataclass
class _Op:
    kind: str  # enter | leave | read | tick | resync
    room_id: int = 0
    user_id: int = 0
    public: dict[str, Any] = field(default_factory=dict)
    limit: int = 0
    held: dict[str, dict[str, Any]] = field(default_factory=dict)  # resync: "room:user" -> profile
    answer: asyncio.Future[Any] | None = None


class SharedRoster:
    def __init__(self, redis_url: str, on_change: Change, holding: Holding, *,
                 dead_after: float = 20.0, resync_every: float = 30.0) -> None:
        self.process = secrets.token_hex(8)
        self._url = redis_url
        self._on_change = on_change
        self._holding = holding
        self._dead_after = dead_after
        self._resync_every = resync_every
        self._queue: deque[_Op] = deque()
        self._wake = asyncio.Event()
        self._counts: dict[int, int] = {}  # room -> online count in the cluster, last seen
        self._dirty = True  # Redis may disagree with us: resync at the next chance
        self._circuit = Circuit("Redis (presence)", timeout=TIMEOUT, cooldown=1.0)
        self._redis: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def circuit(self) -> Circuit:
        """The breaker on presence pipelines (its state is a metric)."""
        return self._circuit

    # -- what presence calls ----------------------------------------------------------
    def enter(self, room_id: int, user_id: int, public: dict[str, Any]) -> None:
        self._put(_Op("enter", room_id, user_id, public))

    def leave(self, room_id: int, user_id: int) -> None:
        self._put(_Op("leave", room_id, user_id))

    def count(self, room_id: int) -> int | None:
        """The room's online count in the cluster as last seen (None: never seen)."""
        return self._counts.get(room_id)

    async def listing(self, room_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The first ``limit`` people online in the room and the count, read after every
        change queued before it. Raises if Redis cannot answer in time."""
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Op("read", room_id, limit=limit, answer=answer))
        async with asyncio.timeout(TIMEOUT * 2):
            return await answer  # type: ignore[no-any-return]

    def size(self) -> int:
        return len(self._counts) + len(self._queue)

    def _put(self, op: _Op) -> None:
        self._queue.append(op)
        self._wake.set()

    # -- the worker -------------------------------------------------------------------
    async def start(self) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._url, socket_connect_timeout=TIMEOUT,
                                     socket_timeout=TIMEOUT * 2)
        self._tasks = [asyncio.create_task(self._run(), name="presence-redis"),
                       asyncio.create_task(self._ticks(), name="presence-heartbeat")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._redis.aclose()

    async def _ticks(self) -> None:
        """Heartbeat (and sweep of dead processes) several times per timeout; a resync
        now and then, and soon after anything went wrong."""
        beat = max(0.25, self._dead_after / 4)
        since_resync = 0.0
        while True:
            if self._dirty or since_resync >= self._resync_every:
                self._put(_Op("resync"))
                since_resync = 0.0
            self._put(_Op("tick"))
            await asyncio.sleep(beat)
            since_resync += beat

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            ops = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                results = await self._circuit.call(partial(self._execute, ops))
            except Exception as exc:  # Redis away: our own view stands until it is back
                self._dirty = True
                for op in ops:
                    if op.answer is not None and not op.answer.done():
                        op.answer.set_exception(ConnectionError(str(exc) or "unavailable"))
                    elif op.kind in ("enter", "leave"):
                        self._on_change(op.room_id, op.user_id, op.public or {"id": op.user_id},
                                        op.kind == "enter")
                await asyncio.sleep(0.1 if self._queue else 0)
                continue
            for op, result in zip(ops, results, strict=True):
                try:
                    self._apply(op, result)
                except Exception:
                    log.exception("presence: unexpected answer from Redis to %s", op.kind)

    async def _execute(self, ops: list[_Op]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        mine = lua.process_key(self.process)
        for op in ops:
            member = f"{op.room_id}:{op.user_id}"
            if op.kind == "enter":
                pipe.eval(lua.ENTER, 3, lua.room_key(op.room_id), mine, lua.PEOPLE, member,
                          op.user_id, json.dumps(op.public))
            elif op.kind == "leave":
                pipe.eval(lua.LEAVE, 2, lua.room_key(op.room_id), mine, member, op.user_id)
            elif op.kind == "read":
                pipe.eval(lua.READ, 2, lua.room_key(op.room_id), lua.PEOPLE, op.limit)
            elif op.kind == "tick":
                pipe.eval(lua.TICK, 0, self.process, self._dead_after)
            else:  # resync: what this process holds at the moment it runs
                op.held = {f"{r}:{u}": public for r, u, public in self._holding()}
                held = [x for m, public in op.held.items() for x in (m, json.dumps(public))]
                pipe.eval(lua.RESYNC, 2, mine, lua.PEOPLE, *held)
        results: list[Any] = await pipe.execute()
        return results

    def _apply(self, op: _Op, result: Any) -> None:
        if op.kind in ("enter", "leave"):
            changed, count = int(result[0]), int(result[1])
            self._counts[op.room_id] = count
            if changed:
                self._on_change(op.room_id, op.user_id, op.public or {"id": op.user_id},
                                op.kind == "enter")
        elif op.kind == "read" and op.answer is not None and not op.answer.done():
            people = [json.loads(p) for p in result[1:] if p]
            self._counts[op.room_id] = int(result[0])
            op.answer.set_result((people, int(result[0])))
        elif op.kind == "tick":
            for member in result:
                self._changed(member.decode() if isinstance(member, bytes) else str(member),
                              None, online=False)
        elif op.kind == "resync":
            self._dirty = False
            for member, flag in zip(result[::2], result[1::2], strict=True):
                text = member.decode() if isinstance(member, bytes) else str(member)
                self._changed(text, op.held.get(text), online=flag in (b"1", "1"))

    def _changed(self, member: str, public: dict[str, Any] | None, *, online: bool) -> None:
        room, user = (int(part) for part in member.split(":", 1))
        if room in self._counts:
            self._counts[room] += 1 if online else -1
        self._on_change(room, user, public or {"id": user}, online)
