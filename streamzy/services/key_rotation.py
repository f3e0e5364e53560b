"""Rotating room data keys on a live server (``streamzy rotate-keys --data-keys``).

1. Switch: every room gets key version v+1 and ``rooms.key_version`` moves to it, in the
   same transaction (new writes use it from then on; writers holding an older cached
   version are refused and seal again, see services/key_versions.py). The keyring epoch is
   bumped so every process drops its cached versions.
2. Re-encrypt, room by room, in batches: rows are read and re-sealed off the database
   lock (in a thread); each batch is one transaction that locks the room and replaces a
   row only if it is still what was read (``WHERE id = .. AND key_version = old AND
   ciphertext = old``): a concurrent edit, delete or reaction is never overwritten, the
   skipped row is picked up by the next pass. A message's reactions move with it (their
   ``emoji_mac`` recomputed under the new version); its attachments move one file per
   transaction (services/attachment_rotation.py). The checkpoint (system_state
   ``rotation``) is written in the batch's own transaction, so after kill -9 a re-run
   continues where the last committed batch ended. A row is at every instant either on
   its old version (still live) or on the new one: always readable.
3. Destroy: once no row of a room needs an old version, and a grace period longer than
   the processes' keyring check has passed since the last row moved (a reader that
   fetched an old row just before may still be opening it), the old version is destroyed
   (``wrapped_key`` NULL) and the epoch bumped. No row can come back to a retired version:
   new rows take the room's current one, edits and reactions the message's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import LargeBinary, TextClause, bindparam, func, select, text, update

from streamzy.clock import Clock, as_utc
from streamzy.services.attachment_rotation import reencrypt_attachments
from streamzy.services.key_inventory import bump_epoch
from streamzy.services.key_versions import lock_room_version, lock_room_version_in
from streamzy.services.message_changes import REACTION
from streamzy.services.search_index import blind_terms, blinder, drop_terms, write_terms
from streamzy.storage import system_state
from streamzy.storage.crypto import DataKey, Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import (
    Attachment,
    Message,
    Reaction,
    Report,
    Room,
    RoomKey,
    UtcDateTime,
)

Audit = Callable[..., Awaitable[None]]
Progress = Callable[[int], None]
Sleep = Callable[[float], Awaitable[None]]

_MESSAGES = text("SELECT id, seq, key_version, ciphertext FROM messages WHERE room_id = :room "
                 "AND seq > :after AND key_version <> :target ORDER BY seq LIMIT :n")
_MOVE_MESSAGE = text(
    "UPDATE messages SET key_version = :new, ciphertext = :sealed WHERE id = :id "
    "AND key_version = :old AND ciphertext = :was RETURNING id").bindparams(
    bindparam("sealed", type_=LargeBinary), bindparam("was", type_=LargeBinary))
_REACTIONS = text("SELECT r.id, r.message_id, r.key_version, r.ciphertext FROM reactions r "
                  "JOIN messages m ON m.id = r.message_id WHERE m.room_id = :room "
                  "AND m.seq > :after AND m.seq <= :last AND r.key_version <> :target")
_MOVE_REACTION = text(
    "UPDATE reactions SET key_version = :new, ciphertext = :sealed, emoji_mac = :mac "
    "WHERE id = :id AND key_version = :old AND ciphertext = :was RETURNING id").bindparams(
    bindparam("sealed", type_=LargeBinary), bindparam("was", type_=LargeBinary))
_REPORTS = text("SELECT id, key_version, reason_ciphertext FROM reports WHERE room_id = :room "
                "AND key_version <> :target ORDER BY id LIMIT :n")
_MOVE_REPORT = text(
    "UPDATE reports SET key_version = :new, reason_ciphertext = :sealed WHERE id = :id "
    "AND key_version = :old AND reason_ciphertext = :was RETURNING id").bindparams(
    bindparam("sealed", type_=LargeBinary), bindparam("was", type_=LargeBinary))
_CHECKPOINT = text("UPDATE system_state SET value = :value, updated_at = :at "
                   "WHERE name = :name RETURNING name").bindparams(
    bindparam("at", type_=UtcDateTime))


@dataclass(frozen=True)
class Throttle:
    """How hard the rotation may push: rows per batch (one short transaction each), the
    share of wall time spent working (``duty`` 0.5: pause as long as each batch took) and
    a ceiling on rows per second (0: none)."""

    batch_size: int = 200
    duty: float = 1.0
    max_rate: float = 0.0

    def pause_after(self, rows: int, took: float) -> float:
        pause = took * (1 - self.duty) / self.duty if 0 < self.duty < 1 else 0.0
        if self.max_rate > 0:
            pause = max(pause, rows / self.max_rate - took)
        return max(0.0, pause)


@dataclass
class Outcome:
    switched: int = 0
    moved: int = 0
    unreadable: int = 0  # rows no live key opens (tampered): left as they are
    destroyed: int = 0  # old room key versions destroyed
    kept: int = 0  # old versions kept because a row still needs them
    wait_seconds: float = 0.0  # > 0: the grace period has not passed yet; run again


def _rows(tx: Tx, statement: TextClause, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
    return tx.rows(statement, params)


def _resealed(rows: list[tuple[int, int, int, bytes]], keys: dict[int, DataKey | None],
              new: DataKey) -> tuple[list[dict[str, Any]], int]:
    """Re-seal message rows under ``new`` (blocking; run in a thread), with their search
    terms blinded under it."""
    out, unreadable = [], 0
    blind = blinder(new)
    for message_id, _seq, version, ciphertext in rows:
        terms: tuple[str, ...] = ()
        if not ciphertext:  # a deleted message: nothing sealed, only the version moves
            sealed = b""
        else:
            old = keys.get(version)
            plain = None if old is None else old.open(ciphertext)
            if plain is None:
                unreadable += 1
                continue
            sealed = new.seal(plain)
            terms = blind_terms(blind, plain)
        out.append({"id": message_id, "old": version, "was": ciphertext, "sealed": sealed,
                    "terms": terms})
    return out, unreadable


class KeyRotation:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, audit: Audit, *,
                 grace_seconds: float, sleep: Sleep = asyncio.sleep) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._audit = audit
        self.grace_seconds = grace_seconds
        self._sleep = sleep
        self._checkpoint: dict[str, Any] = {}

    # -- checkpoint ---------------------------------------------------------------------

    async def checkpoint(self) -> dict[str, Any] | None:
        return await system_state.read_json(self._db, system_state.ROTATION)

    def _save(self, tx: Tx) -> None:
        tx.rows(_CHECKPOINT, {"value": json.dumps(self._checkpoint, sort_keys=True),
                              "at": self._clock.now(), "name": system_state.ROTATION})

    async def _begin(self) -> bool:
        """Load the unfinished rotation or start one; True when resuming."""
        found = await self.checkpoint()
        if found is not None and found.get("phase") == "data":
            self._checkpoint = found
            return True
        self._checkpoint = {"phase": "data", "started_at": self._clock.now().isoformat(),
                            "room": 0, "after_seq": 0, "moved": 0, "reencrypted_at": None}
        await system_state.write_json(self._db, system_state.ROTATION, self._checkpoint,
                                      self._clock.now())
        return False

    # -- 1. switch ----------------------------------------------------------------------

    async def _room_ids(self) -> list[int]:
        async with self._db.unit() as db:
            return [int(i) for i in (await db.execute(select(Room.id).order_by(Room.id)))
                    .scalars()]

    async def switch(self) -> int:
        """Give every room a new current key version, room by room in id order; each
        room's transaction also records it in the checkpoint, so a resumed run never
        switches a room twice."""
        upto = int(self._checkpoint.get("switched_upto", 0))
        switched = 0
        for room_id in await self._room_ids():
            if room_id <= upto:
                continue
            async with self._db.unit() as db:
                current = await lock_room_version_in(db, room_id)
                if current is None:
                    continue
                top = (await db.execute(select(func.max(RoomKey.version)).where(
                    RoomKey.room_id == room_id))).scalar_one()
                new = max(int(top or 0), current) + 1
                await self._keyring.create_room_key(db, room_id, new)
                await db.execute(update(Room).where(Room.id == room_id)
                                 .values(key_version=new))
                self._checkpoint["switched_upto"] = room_id
                await system_state.write(db, system_state.ROTATION,
                                         json.dumps(self._checkpoint, sort_keys=True),
                                         self._clock.now())
                switched += 1
        await bump_epoch(self._db, self._clock)
        return switched

    # -- 2. re-encrypt ------------------------------------------------------------------

    async def _keys(self, room_id: int, target: int) -> tuple[DataKey, dict[int, DataKey | None]]:
        async with self._db.unit() as db:
            versions = [int(v) for v in (await db.execute(select(RoomKey.version).where(
                RoomKey.room_id == room_id))).scalars()]
        new = await self._keyring.data_key(room_id, target)
        if new is None:
            raise RuntimeError(f"room {room_id}: its current key version {target} is gone")
        return new, {v: await self._keyring.data_key(room_id, v) for v in versions
                     if v != target}

    async def _target(self, room_id: int) -> int | None:
        async with self._db.unit() as db:
            version = (await db.execute(select(Room.key_version).where(Room.id == room_id))
                       ).scalar_one_or_none()
        return None if version is None else int(version)

    async def reencrypt_room(self, room_id: int, throttle: Throttle, after_seq: int = 0,
                             progress: Progress | None = None) -> Outcome:
        """Move the room's messages (with their reactions) and reports to its current key
        version, in batches; the checkpoint follows every batch."""
        outcome = Outcome()
        target = await self._target(room_id)
        if target is None:
            return outcome
        new, old = await self._keys(room_id, target)
        while True:
            started = time.perf_counter()
            rows = [(int(a), int(b), int(c), bytes(d)) for a, b, c, d in await self._db.read(
                _rows, _MESSAGES, {"room": room_id, "after": after_seq, "target": target,
                                   "n": throttle.batch_size})]
            if not rows:
                break
            moves, unreadable = await asyncio.to_thread(_resealed, rows, old, new)
            outcome.unreadable += unreadable
            last_seq = rows[-1][1]
            self._checkpoint.update(room=room_id, after_seq=last_seq)
            moved = await self._db.run_transaction(self._apply_messages, room_id, target,
                                                   after_seq, last_seq, moves, old, new)
            outcome.moved += moved
            after_seq = last_seq
            if progress is not None:
                progress(moved)
            await self._pause(throttle, len(rows), time.perf_counter() - started)
        outcome.moved += await self._reencrypt_reports(room_id, target, old, new, throttle,
                                                       progress)
        files, unreadable = await reencrypt_attachments(self._db, room_id, target, old, new,
                                                        progress)
        outcome.moved += files
        outcome.unreadable += unreadable
        return outcome

    def _apply_messages(self, tx: Tx, room_id: int, target: int, after: int, last: int,
                        moves: list[dict[str, Any]], old: dict[int, DataKey | None],
                        new: DataKey) -> int:
        """One batch (blocking, in the transaction): lock the room, move each message that
        is unchanged since it was read, then its reactions, then save the checkpoint."""
        current = lock_room_version(tx, room_id)
        if current is None:  # the room was removed meanwhile
            return 0
        if current != target:
            raise RuntimeError(f"room {room_id} changed key version during the rotation")
        moved_ids = set()
        for move in moves:
            params = {k: v for k, v in move.items() if k != "terms"}
            if tx.rows(_MOVE_MESSAGE, {**params, "new": target}):
                moved_ids.add(move["id"])
                # Its search terms move with it: searchable under the new version at once.
                drop_terms(tx, move["id"])
                write_terms(tx, [(move["id"], room_id, target, move["terms"])])
        if moved_ids:
            for reaction_id, message_id, version, sealed in tx.rows(
                    _REACTIONS, {"room": room_id, "after": after, "last": last,
                                 "target": target}):
                key = old.get(int(version))
                emoji = None if key is None else key.open(bytes(sealed))
                if int(message_id) not in moved_ids or emoji is None:
                    continue  # stays with its message (moved on the next pass)
                tx.rows(_MOVE_REACTION, {"id": reaction_id, "old": version, "was": sealed,
                                         "new": target, "sealed": new.seal(emoji),
                                         "mac": new.blind(REACTION, emoji)})
        self._checkpoint["moved"] = int(self._checkpoint.get("moved", 0)) + len(moved_ids)
        self._save(tx)
        return len(moved_ids)

    async def _reencrypt_reports(self, room_id: int, target: int, old: dict[int, DataKey | None],
                                 new: DataKey, throttle: Throttle,
                                 progress: Progress | None) -> int:
        total, skipped = 0, 0
        while True:
            rows = await self._db.read(_rows, _REPORTS, {"room": room_id, "target": target,
                                                         "n": throttle.batch_size + skipped})
            moves = []
            for report_id, version, sealed in rows:
                key = old.get(int(version))
                reason = None if key is None else key.open(bytes(sealed))
                if reason is not None:
                    moves.append({"id": report_id, "old": version, "was": bytes(sealed),
                                  "sealed": new.seal(reason), "new": target})
            if not moves:
                return total

            def apply(tx: Tx, moves: list[dict[str, Any]] = moves) -> int:
                lock_room_version(tx, room_id)
                return sum(1 for move in moves if tx.rows(_MOVE_REPORT, move))

            moved = await self._db.run_transaction(apply)
            total += moved
            skipped = len(rows) - moved
            if progress is not None:
                progress(moved)

    async def _pause(self, throttle: Throttle, rows: int, took: float) -> None:
        pause = throttle.pause_after(rows, took)
        if pause > 0:
            await self._sleep(pause)

    # -- 3. destroy ---------------------------------------------------------------------

    async def _needing(self) -> dict[tuple[int, int], int]:
        """(room, old live version) -> rows still sealed with it."""
        async with self._db.unit() as db:
            olds = (await db.execute(select(RoomKey.room_id, RoomKey.version)
                                     .join(Room, Room.id == RoomKey.room_id)
                                     .where(RoomKey.wrapped_key.is_not(None),
                                            RoomKey.version < Room.key_version))).all()
            needing: dict[tuple[int, int], int] = {}
            for room_id, version in olds:
                count = 0
                for query in (
                    select(func.count()).select_from(Message).where(
                        Message.room_id == room_id, Message.key_version == version),
                    select(func.count()).select_from(Reaction)
                    .join(Message, Message.id == Reaction.message_id)
                    .where(Message.room_id == room_id, Reaction.key_version == version),
                    select(func.count()).select_from(Report).where(
                        Report.room_id == room_id, Report.key_version == version),
                    select(func.count()).select_from(Attachment).where(
                        Attachment.room_id == room_id, Attachment.key_version == version),
                ):
                    count += int((await db.execute(query)).scalar_one())
                needing[(int(room_id), int(version))] = count
        return needing

    async def destroy_retired(self) -> Outcome:
        """Destroy every old room key version no row needs, once the grace period since
        the last re-encryption has passed (``wait_seconds`` says how long is left)."""
        outcome = Outcome()
        moved_at = self._checkpoint.get("reencrypted_at")
        if moved_at is not None:
            left = (as_utc(datetime.fromisoformat(moved_at))
                    + timedelta(seconds=self.grace_seconds) - as_utc(self._clock.now()))
            if left.total_seconds() > 0:
                outcome.wait_seconds = left.total_seconds()
                return outcome
        now = self._clock.now()
        for (room_id, version), count in sorted((await self._needing()).items()):
            if count:
                outcome.kept += 1
                continue
            async with self._db.unit() as db:
                # Behind the room lock every writer takes: none can be mid-way writing.
                await lock_room_version_in(db, room_id)
                result = await db.execute(update(RoomKey).where(
                    RoomKey.room_id == room_id, RoomKey.version == version,
                    RoomKey.wrapped_key.is_not(None)).values(wrapped_key=None,
                                                             destroyed_at=now))
                outcome.destroyed += int(result.rowcount or 0)  # type: ignore[attr-defined]
            self._keyring.forget(room_id)
        if outcome.destroyed:
            await bump_epoch(self._db, self._clock)
        return outcome

    # -- the whole run ------------------------------------------------------------------

    async def rows_to_move(self) -> int:
        async with self._db.unit() as db:
            messages = (await db.execute(select(func.count()).select_from(Message)
                                         .join(Room, Room.id == Message.room_id)
                                         .where(Message.key_version != Room.key_version))
                        ).scalar_one()
            reports = (await db.execute(select(func.count()).select_from(Report)
                                        .join(Room, Room.id == Report.room_id)
                                        .where(Report.key_version != Room.key_version))
                       ).scalar_one()
            files = (await db.execute(select(func.count()).select_from(Attachment)
                                      .join(Room, Room.id == Attachment.room_id)
                                      .where(Attachment.key_version != Room.key_version))
                     ).scalar_one()
        return int(messages) + int(reports) + int(files)

    async def run(self, throttle: Throttle, progress: Progress | None = None,
                  on_total: Callable[[int], None] | None = None) -> Outcome:
        """Switch (unless resuming past it), re-encrypt from the checkpoint, re-pass rooms
        with rows left behind by concurrent edits, wait out the grace, destroy."""
        resuming = await self._begin()
        outcome = Outcome()
        if not resuming or not self._checkpoint.get("switched"):
            outcome.switched = await self.switch()
            self._checkpoint["switched"] = True
            await system_state.write_json(self._db, system_state.ROTATION, self._checkpoint,
                                          self._clock.now())
        if on_total is not None:
            on_total(await self.rows_to_move())
        start_room, start_seq = int(self._checkpoint["room"]), int(self._checkpoint["after_seq"])
        for room_id in await self._room_ids():
            if room_id < start_room:
                continue
            part = await self.reencrypt_room(room_id, throttle,
                                             start_seq if room_id == start_room else 0,
                                             progress)
            outcome.moved += part.moved
            outcome.unreadable += part.unreadable
        for _pass in range(3):  # rows an edit changed under a batch: moved on a re-pass
            left = {room for (room, _v), count in (await self._needing()).items() if count}
            if not left:
                break
            for room_id in sorted(left):
                part = await self.reencrypt_room(room_id, throttle, 0, progress)
                outcome.moved += part.moved
        self._checkpoint["reencrypted_at"] = self._clock.now().isoformat()
        await system_state.write_json(self._db, system_state.ROTATION, self._checkpoint,
                                      self._clock.now())
        while True:
            done = await self.destroy_retired()
            if not done.wait_seconds:
                break
            await self._sleep(done.wait_seconds)
        outcome.destroyed, outcome.kept = done.destroyed, done.kept
        self._checkpoint["phase"] = "done" if not done.kept else "data"
        self._checkpoint["finished_at"] = self._clock.now().isoformat()
        await system_state.write_json(self._db, system_state.ROTATION, self._checkpoint,
                                      self._clock.now())
        return outcome
