"""Rebuilding the blind search index for stored messages (``streamzy search-index rebuild``):
messages written before the index existed, or whose terms were lost.

Room by room, in batches of messages by sequence number: rows are read and their terms
blinded off the database lock (in a thread); each batch is one transaction that locks the
room (as every writer does first, services/key_versions.py) and replaces a message's
terms only if the row is still what was read (same key version and ciphertext), so a
concurrent edit or delete, which writes its own terms, is never undone. Rewriting a
message's terms is idempotent, so the run is safe while the server runs and resumable:
the checkpoint (system_state ``search_rebuild``) follows each batch, and a re-run after a
kill continues from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LargeBinary, bindparam, text

from streamzy.clock import Clock
from streamzy.services.key_versions import lock_room_version
from streamzy.services.search_index import blind_terms, blinder, drop_terms, write_terms
from streamzy.storage import system_state
from streamzy.storage.crypto import DataKey, Keyring, KeyUnavailable
from streamzy.storage.db import Database, Tx

CHECKPOINT = "search_rebuild"
Progress = Callable[[int], None]

_ROOMS = text("SELECT id FROM rooms WHERE kind <> 'deleted' ORDER BY id")
_ROOM_NAMED = text("SELECT id FROM rooms WHERE kind <> 'deleted' AND name = :name")
_COUNT = text("SELECT count(*) FROM messages WHERE room_id = :room AND seq > :after "
              "AND deleted_at IS NULL")
_BATCH = text("SELECT id, seq, key_version, ciphertext FROM messages WHERE room_id = :room "
              "AND seq > :after AND deleted_at IS NULL ORDER BY seq LIMIT :n")
_SAME = text("SELECT id FROM messages WHERE id = :id AND key_version = :version "
             "AND ciphertext = :was AND deleted_at IS NULL").bindparams(
    bindparam("was", type_=LargeBinary))


@dataclass
class RebuildOutcome:
    rooms: int = 0
    messages: int = 0
    terms: int = 0
    unreadable: int = 0  # rows no live key opens: left without terms


def _read(tx: Tx, statement: Any, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    return tx.rows(statement, params)


def _blind_batch(rows: list[tuple[int, int, int, bytes]],
                 keys: dict[int, DataKey | None]) -> tuple[list[tuple[int, int, bytes,
                                                                   tuple[str, ...]]], int]:
    """Open each row and blind its terms under its own key version (blocking)."""
    out, unreadable = [], 0
    blinds = {version: blinder(key) for version, key in keys.items() if key is not None}
    for message_id, _seq, version, sealed in rows:
        key = keys.get(version)
        plain = None if key is None else key.open(sealed)
        if plain is None:
            unreadable += 1
            continue
        out.append((message_id, version, sealed, blind_terms(blinds[version], plain)))
    return out, unreadable


def _apply(tx: Tx, room_id: int, batch: list[tuple[int, int, bytes, tuple[str, ...]]]) -> \
        tuple[int, int]:
    if lock_room_version(tx, room_id) is None:  # the room went away meanwhile
        return 0, 0
    messages = terms = 0
    for message_id, version, sealed, blinded in batch:
        if not tx.rows(_SAME, {"id": message_id, "version": version, "was": sealed}):
            continue  # changed since it was read: the change wrote its own terms
        drop_terms(tx, message_id)
        terms += write_terms(tx, [(message_id, room_id, version, blinded)])
        messages += 1
    return messages, terms


class SearchRebuild:
    def __init__(self, db: Database, keyring: Keyring, clock: Clock) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def _room_ids(self, room: str | None) -> list[int]:
        rows = await self._db.read(_read, _ROOMS if room is None else _ROOM_NAMED,
                                   {} if room is None else {"name": room})
        return [int(r[0]) for r in rows]

    async def checkpoint(self) -> dict[str, Any] | None:
        return await system_state.read_json(self._db, CHECKPOINT)

    async def run(self, room: str | None = None, batch_size: int = 500,
                  progress: Progress | None = None,
                  on_total: Callable[[int], None] | None = None) -> RebuildOutcome:
        """Index every live message of every room (or of ``room``), from the checkpoint
        of an unfinished run of the same scope."""
        scope = room or ""
        found = await self.checkpoint()
        start_room, start_seq = 0, 0
        if found is not None and found.get("phase") == "running" and found.get("scope") == scope:
            start_room, start_seq = int(found["room"]), int(found["after_seq"])
        rooms = [r for r in await self._room_ids(room) if r >= start_room]
        if on_total is not None:
            total = 0
            for room_id in rooms:
                total += int((await self._db.read(_read, _COUNT, {
                    "room": room_id, "after": start_seq if room_id == start_room else 0}))[0][0])
            on_total(total)
        outcome = RebuildOutcome()
        for room_id in rooms:
            after = start_seq if room_id == start_room else 0
            await self._room(room_id, after, batch_size, scope, outcome, progress)
            outcome.rooms += 1
        await system_state.write_json(self._db, CHECKPOINT, {
            "phase": "done", "scope": scope, "messages": outcome.messages,
            "finished_at": self._clock.now().isoformat()}, self._clock.now())
        return outcome

    async def _keys(self, room_id: int, versions: set[int]) -> dict[int, DataKey | None]:
        keys: dict[int, DataKey | None] = {}
        for version in versions:
            try:
                keys[version] = await self._keyring.data_key(room_id, version)
            except KeyUnavailable:
                keys[version] = None
        return keys

    async def _room(self, room_id: int, after: int, batch_size: int, scope: str,
                    outcome: RebuildOutcome, progress: Progress | None) -> None:
        while True:
            rows = [(int(a), int(b), int(c), bytes(d)) for a, b, c, d in await self._db.read(
                _read, _BATCH, {"room": room_id, "after": after, "n": batch_size})]
            if not rows:
                return
            keys = await self._keys(room_id, {version for _i, _s, version, _c in rows})
            batch, unreadable = await asyncio.to_thread(_blind_batch, rows, keys)
            messages, terms = await self._db.run_transaction(_apply, room_id, batch)
            outcome.messages += messages
            outcome.terms += terms
            outcome.unreadable += unreadable
            after = rows[-1][1]
            await system_state.write_json(self._db, CHECKPOINT, {
                "phase": "running", "scope": scope, "room": room_id, "after_seq": after},
                self._clock.now())
            if progress is not None:
                progress(len(rows))
