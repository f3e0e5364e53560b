"""Which rooms each socket of this process has joined, and which sockets each room has."""

from __future__ import annotations


class RoomIndex:
    """Both directions kept together, so presence and leave cost O(room members), not
    O(every socket of the process)."""

    def __init__(self) -> None:
        self._rooms_of: dict[str, set[int]] = {}
        self._members: dict[int, set[str]] = {}

    def add(self, sid: str, room_id: int) -> None:
        self._rooms_of.setdefault(sid, set()).add(room_id)
        self._members.setdefault(room_id, set()).add(sid)

    def discard(self, sid: str, room_id: int) -> None:
        rooms = self._rooms_of.get(sid)
        if rooms is not None:
            rooms.discard(room_id)
        self._drop_member(room_id, sid)

    def remove(self, sid: str) -> set[int]:
        """Forget a socket; returns the rooms it had joined."""
        rooms = self._rooms_of.pop(sid, set())
        for room_id in rooms:
            self._drop_member(room_id, sid)
        return rooms

    def _drop_member(self, room_id: int, sid: str) -> None:
        members = self._members.get(room_id)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._members[room_id]

    def joined(self, sid: str, room_id: int) -> bool:
        return room_id in self._rooms_of.get(sid, ())

    def members(self, room_id: int) -> list[str]:
        return list(self._members.get(room_id, ()))

    def size(self) -> int:
        """How many sockets have any room here (0 once every socket is forgotten)."""
        return len(self._rooms_of) + len(self._members)
