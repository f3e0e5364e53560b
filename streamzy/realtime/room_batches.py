"""Presence changes and typing indicators, coalesced per room.

A join storm of N people into one room used to send N whole online lists to N sockets.
Here each room collects what changed and sends it as one batch: at once if the room sent
nothing within the interval, otherwise when the interval since its last batch is up. So a
room gets at most one batch per interval however many join, and each batch names only who
changed. Someone who came and went within one interval is not mentioned at all.

A large room waits longer between batches (``spacing``): every batch goes to every member,
so the presence updates of a room of 10,000 at one per second would be 10,000 deliveries a
second. Spacing batches by the room's size keeps that rate bounded whatever the size.

Pure bookkeeping with the time passed in, so tests drive it with any clock; the sending
task in ``presence.py`` uses the event loop's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Batch:
    room_id: int
    joined: list[dict[str, Any]]  # public profiles of who came online
    left: list[int]               # user ids of who went offline
    typing: list[dict[str, Any]]  # public profiles of who is typing


@dataclass
class _Pending:
    since: float
    # user id -> [online before this batch, online now, public profile]
    changes: dict[int, list[Any]] = field(default_factory=dict)
    typing: dict[int, dict[str, Any]] = field(default_factory=dict)


class RoomBatches:
    def __init__(self, interval: float,
                 spacing: Callable[[int], float] | None = None) -> None:
        self.interval = interval
        self._spacing = spacing or (lambda room_id: interval)
        self._pending: dict[int, _Pending] = {}
        self._quiet_until: dict[int, float] = {}  # room -> no batch before this time

    def _room(self, room_id: int, now: float) -> tuple[_Pending, bool]:
        pending = self._pending.get(room_id)
        if pending is None:
            pending = self._pending[room_id] = _Pending(since=now)
            return pending, True
        return pending, False

    def presence(self, room_id: int, user_id: int, public: dict[str, Any], online: bool,
                 now: float) -> bool:
        """``user_id`` came online (``online``) or went offline in the room. True if the
        room had nothing waiting before (the sender's next wake-up may have moved)."""
        pending, new = self._room(room_id, now)
        entry = pending.changes.get(user_id)
        if entry is None:
            pending.changes[user_id] = [not online, online, public]
        else:
            entry[1] = online
            entry[2] = public
        return new

    def typing(self, room_id: int, public: dict[str, Any], now: float) -> bool:
        pending, new = self._room(room_id, now)
        pending.typing[int(public["id"])] = public
        return new

    def _due(self, room_id: int, pending: _Pending) -> float:
        return max(pending.since, self._quiet_until.get(room_id, pending.since))

    def next_due(self) -> float | None:
        """When ``take_due`` next has work: the earliest waiting batch, or the earliest
        memory of a last batch to forget (None: nothing at all)."""
        waiting = min((self._due(r, p) for r, p in self._pending.items()), default=None)
        forget = min((until for r, until in self._quiet_until.items()
                      if r not in self._pending), default=None)
        return min((t for t in (waiting, forget) if t is not None), default=None)

    def take_due(self, now: float) -> list[Batch]:
        """The batches whose time has come; a batch with nothing left to say is dropped."""
        out: list[Batch] = []
        for room_id, pending in list(self._pending.items()):
            if self._due(room_id, pending) > now:
                continue
            del self._pending[room_id]
            self._quiet_until[room_id] = now + max(self.interval, self._spacing(room_id))
            joined = [e[2] for e in pending.changes.values() if e[1] and not e[0]]
            left = [uid for uid, e in pending.changes.items() if e[0] and not e[1]]
            typing = [p for uid, p in pending.typing.items()
                      if pending.changes.get(uid, (True, True))[1]]  # not if gone since
            if joined or left or typing:
                out.append(Batch(room_id, joined, left, typing))
        # A room quiet for a whole interval needs no memory of its last batch.
        for room_id, until in list(self._quiet_until.items()):
            if until <= now and room_id not in self._pending:
                del self._quiet_until[room_id]
        return out

    def size(self) -> int:
        """Rooms with a batch waiting or a recent one remembered (0 once all is quiet)."""
        return len(self._pending) + len(self._quiet_until)
