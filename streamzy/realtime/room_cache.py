"""Rooms are looked up on every event; their identity and key version rarely change, so a
short-lived per-process cache saves a query per event."""

from __future__ import annotations

from streamzy.clock import Clock
from streamzy.services.rooms import RoomInfo, Rooms

ROOM_CACHE_SECONDS = 30.0
MAX_ENTRIES = 10_000


class RoomCache:
    def __init__(self, rooms: Rooms, clock: Clock) -> None:
        self._rooms = rooms
        self._clock = clock
        self._cache: dict[int | str, tuple[float, RoomInfo]] = {}

    async def get(self, ref: int | str) -> RoomInfo:
        """The room by id or name (NotFound when there is none)."""
        now = self._clock.now().timestamp()
        cached = self._cache.get(ref)
        if cached is not None and now - cached[0] < ROOM_CACHE_SECONDS:
            return cached[1]
        room = await self._rooms.resolve(ref)
        if len(self._cache) > MAX_ENTRIES:
            self._cache.clear()
        self._cache[room.id] = self._cache[room.name] = (now, room)
        return room

    def forget(self) -> None:
        """Drop every cached room (the keyring epoch moved: key versions may be stale)."""
        self._cache.clear()
