"""Socket.IO rooms that know, for each socket, which rooms it is in.

python-socketio finds a disconnecting socket's rooms by looking at every room of the
namespace (each socket has its own room, so there are at least as many rooms as sockets):
O(sockets) per disconnect, O(N²) when N sockets leave together, as every client of a
restarting process does. Keeping each socket's rooms makes a disconnect cost O(its rooms).
The rest of a disconnect is python-socketio's own (``BaseManager.basic_disconnect``).
"""

from __future__ import annotations

from typing import Any


class IndexedRooms:
    """Mixed into a python-socketio client manager (before it in the bases)."""

    rooms: dict[Any, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def _rooms_of(self) -> dict[tuple[str, str], set[Any]]:
        index: dict[tuple[str, str], set[Any]] | None = self.__dict__.get("_room_index")
        if index is None:
            index = self.__dict__["_room_index"] = {}
        return index

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of().setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._rooms_of().get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of()[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in self._rooms_of().pop((namespace, sid), set()):
            super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def indexed_sockets(self) -> int:
        """Sockets with rooms (0 once every one has disconnected)."""
        return len(self._rooms_of())
