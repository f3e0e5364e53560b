"""Moving a room's attachments to its current key version (``rotate-keys --data-keys``).

Like messages (services/key_rotation.py): read, re-sealed in a worker thread off any
lock, then replaced in a transaction that locks the room and only if the row is still on
the version it was read with. One file per transaction: a file is up to the attachment
limit, and a transaction of many would hold the database's write lock for long. Files
never change once stored (only ``message_id`` is set), so there is no concurrent edit to
lose; a file deleted meanwhile is simply not found. Resuming needs no checkpoint: the
rows still on an old version are the ones left to move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import LargeBinary, bindparam, text

from streamzy.services.key_versions import lock_room_version
from streamzy.storage.crypto import DataKey
from streamzy.storage.db import Database, Tx

BATCH = 20
_PENDING = text("SELECT id, key_version FROM attachments WHERE room_id = :room "
                "AND key_version <> :target AND id > :after ORDER BY id LIMIT :n")
_ONE = text("SELECT name_sealed, data, thumbnail FROM attachments WHERE id = :id "
            "AND key_version = :old")
_MOVE = text("UPDATE attachments SET key_version = :new, name_sealed = :name, data = :data, "
             "thumbnail = :thumb WHERE id = :id AND key_version = :old RETURNING id"
             ).bindparams(bindparam("name", type_=LargeBinary),
                          bindparam("data", type_=LargeBinary),
                          bindparam("thumb", type_=LargeBinary))


def _rows(tx: Tx, statement: Any, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    return tx.rows(statement, params)


def _reseal(old: DataKey | None, new: DataKey, row: Sequence[Any]
            ) -> tuple[bytes, bytes, bytes | None] | None:
    """The row's name, bytes and thumbnail under ``new`` (blocking); None when unreadable."""
    if old is None:
        return None
    name = old.open(bytes(row[0]))
    data = old.open_bytes(bytes(row[1]))
    thumb = None if row[2] is None else old.open_bytes(bytes(row[2]))
    if name is None or data is None or (row[2] is not None and thumb is None):
        return None
    return new.seal(name), new.seal_bytes(data), (None if thumb is None
                                                  else new.seal_bytes(thumb))


def _move(tx: Tx, room_id: int, target: int, params: dict[str, Any]) -> int:
    current = lock_room_version(tx, room_id)
    if current is None:
        return 0
    if current != target:
        raise RuntimeError(f"room {room_id} changed key version during the rotation")
    return len(tx.rows(_MOVE, params))


async def reencrypt_attachments(db: Database, room_id: int, target: int,
                                old: dict[int, DataKey | None], new: DataKey,
                                progress: Callable[[int], None] | None = None
                                ) -> tuple[int, int]:
    """Move every file of the room not on ``target``; (moved, unreadable)."""
    moved = unreadable = 0
    after = 0
    while True:
        pending = await db.read(_rows, _PENDING, {"room": room_id, "target": target,
                                                  "after": after, "n": BATCH})
        if not pending:
            return moved, unreadable
        for row_id, version in pending:
            after = int(row_id)
            found = await db.read(_rows, _ONE, {"id": row_id, "old": version})
            if not found:
                continue  # deleted, or moved by someone else, meanwhile
            sealed = await asyncio.to_thread(_reseal, old.get(int(version)), new, found[0])
            if sealed is None:
                unreadable += 1
                continue
            name, data, thumb = sealed
            done = await db.run_transaction(_move, room_id, target, {
                "id": row_id, "old": version, "new": target, "name": name, "data": data,
                "thumb": thumb})
            moved += done
            if progress is not None and done:
                progress(done)
