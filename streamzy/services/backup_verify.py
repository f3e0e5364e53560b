"""Proof that a restored database is readable: every sealed row opens with the master keys.

A restore is reported as done only after this pass: every room key is unwrapped with the
configured ``STREAMZY_MESSAGE_KEYS`` and every message text, reaction and report reason is
decrypted with its room key, and so is every attachment (name, bytes, thumbnail). Rows
of a shredded room (its key destroyed on purpose) are counted apart: unreadable by
design, not a failure. Decryption runs in a worker thread, one batch at a time, so memory
stays bounded whatever the size of the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select

from streamzy.storage.crypto import KeyUnavailable, MasterKeys
from streamzy.storage.db import Database
from streamzy.storage.models import Attachment, Message, Reaction, Report, RoomKey

BATCH = 500
VERIFY_TIMEOUT = 60.0  # per statement: a hung database fails the restore, not hangs it
Progress = Callable[[int], None]

# A room key that is there but does not unwrap, and one destroyed on purpose.
_UNWRAPS_NOT = "unwrap-failed"
_SHREDDED = "shredded"


@dataclass(frozen=True)
class Verified:
    checked: int
    failed: int
    shredded: int
    messages: int

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _unwrap_all(master: MasterKeys, rows: Sequence[Any]) -> dict[tuple[int, int], Any]:
    keys: dict[tuple[int, int], Any] = {}
    for room_id, version, wrapped in rows:
        if wrapped is None:
            keys[(room_id, version)] = _SHREDDED
            continue
        try:
            keys[(room_id, version)] = Fernet(master.unwrap(wrapped))
        except (KeyUnavailable, ValueError):
            keys[(room_id, version)] = _UNWRAPS_NOT
    return keys


def _open_batch(keys: dict[tuple[int, int], Any],
                rows: Sequence[tuple[int, int, int, bytes]]) -> tuple[int, int]:
    """(failed, shredded) among ``rows`` of (id, room, key version, ciphertext)."""
    failed = shredded = 0
    for _id, room_id, version, ciphertext in rows:
        key = keys.get((room_id, version), _UNWRAPS_NOT)
        if key is _SHREDDED:
            shredded += 1
        elif key is _UNWRAPS_NOT:
            failed += 1
        else:
            try:
                # One token, or an attachment's newline-joined chunk tokens (seal_bytes).
                for token in bytes(ciphertext).split(b"\n"):
                    key.decrypt(token)
            except InvalidToken:
                failed += 1
    return failed, shredded


def _queries() -> list[Any]:
    """The sealed columns, each as (id, room id, key version, ciphertext) by id."""
    return [
        select(Message.id, Message.room_id, Message.key_version, Message.ciphertext)
        .where(func.length(Message.ciphertext) > 0),
        select(Reaction.id, Message.room_id, Reaction.key_version, Reaction.ciphertext)
        .join(Message, Message.id == Reaction.message_id),
        select(Report.id, Report.room_id, Report.key_version, Report.reason_ciphertext),
        select(Attachment.id, Attachment.room_id, Attachment.key_version,
               Attachment.name_sealed),
        select(Attachment.id, Attachment.room_id, Attachment.key_version, Attachment.data),
        select(Attachment.id, Attachment.room_id, Attachment.key_version,
               Attachment.thumbnail).where(Attachment.thumbnail.is_not(None)),
    ]


# Rows per batch: attachment bytes are up to the attachment limit each, so a few at a time.
_BATCHES = (BATCH, BATCH, BATCH, BATCH, 4, BATCH)


async def verify_database(url: str, master: MasterKeys, *,
                          on_total: Callable[[int], None] | None = None,
                          progress: Progress | None = None) -> Verified:
    """Open every sealed row of the database at ``url``; how many did not open."""
    db = Database(url, timeout=VERIFY_TIMEOUT)
    try:
        async with db.unit() as session:
            key_rows = (await session.execute(
                select(RoomKey.room_id, RoomKey.version, RoomKey.wrapped_key))).all()
            totals = [(await session.execute(select(func.count()).select_from(
                query.subquery()))).scalar_one() for query in _queries()]
        keys = await asyncio.to_thread(_unwrap_all, master, key_rows)
        if on_total is not None:
            on_total(sum(totals))
        failed = shredded = 0
        id_columns = (Message.id, Reaction.id, Report.id, Attachment.id, Attachment.id,
                      Attachment.id)
        for query, id_column, batch in zip(_queries(), id_columns, _BATCHES, strict=True):
            after = 0
            while True:
                async with db.unit() as session:
                    rows = [tuple(r) for r in (await session.execute(
                        query.where(id_column > after).order_by(id_column).limit(batch))).all()]
                if not rows:
                    break
                bad, gone = await asyncio.to_thread(_open_batch, keys, rows)
                failed += bad
                shredded += gone
                after = int(rows[-1][0])
                if progress is not None:
                    progress(len(rows))
        return Verified(sum(totals), failed, shredded, int(totals[0]))
    finally:
        await db.dispose()
