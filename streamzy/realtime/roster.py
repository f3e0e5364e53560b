"""Who is online in each room on this process, by person rather than by socket.

A person with three tabs in a room is online once; they come online with their first
socket there and go offline with their last. Every change is O(1), and a join's answer
takes the first entries without sorting, so a room of thousands costs no more per join
than a room of ten.
"""

from __future__ import annotations

from itertools import islice
from typing import Any


class Roster:
    def __init__(self) -> None:
        # room -> user id -> [sockets of that user in the room, public profile]
        self._rooms: dict[int, dict[int, list[Any]]] = {}

    def add(self, room_id: int, user_id: int, public: dict[str, Any]) -> bool:
        """Count one more socket of ``user_id`` in the room; True if they just came online."""
        people = self._rooms.setdefault(room_id, {})
        entry = people.get(user_id)
        if entry is None:
            people[user_id] = [1, public]
            return True
        entry[0] += 1
        return False

    def remove(self, room_id: int, user_id: int) -> bool:
        """Count one socket fewer; True if that was their last one here (they went offline)."""
        people = self._rooms.get(room_id)
        entry = people.get(user_id) if people is not None else None
        if people is None or entry is None:
            return False
        entry[0] -= 1
        if entry[0] > 0:
            return False
        del people[user_id]
        if not people:
            del self._rooms[room_id]
        return True

    def count(self, room_id: int) -> int:
        return len(self._rooms.get(room_id, ()))

    def first(self, room_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` of the people online, in the order they came."""
        people = self._rooms.get(room_id, {})
        return [entry[1] for entry in islice(people.values(), limit)]

    def holding(self) -> list[tuple[int, int, dict[str, Any]]]:
        """Every (room, user, profile) online here."""
        return [(room_id, user_id, entry[1]) for room_id, people in self._rooms.items()
                for user_id, entry in people.items()]

    def size(self) -> int:
        """Rooms with anyone online (0 once everyone has gone)."""
        return len(self._rooms)
