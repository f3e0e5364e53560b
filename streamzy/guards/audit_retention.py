"""Audit retention: rows older than the audit period are purged, oldest first, in batches,
without breaking the chain.

Before a batch is deleted, the anchor (id and chain value of the last purged row, sealed)
moves to it in the same transaction, so verification starts there and the rows that remain
still verify. Only rows whose chain verifies are purged: a purge never launders evidence of
tampering by deleting it; it stops at the first broken row and says so. Rows are taken in
id order and the purge stops at the first row that is not old enough yet, so the chain
stays contiguous even if clocks of several processes disagreed a little.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.guards.audit_chain import ANCHOR_LABEL, START, ChainRow, Mark, rows_of
from streamzy.guards.audit_verify import columns, first_failure, read_state
from streamzy.storage.db import Database
from streamzy.storage.models import AuditEvent, SystemState
from streamzy.storage.sqlite import read_datetime
from streamzy.storage.system_state import AUDIT_ANCHOR

BATCH = 500

_ANCHOR = SystemState.name == AUDIT_ANCHOR


@dataclass(frozen=True)
class PurgeReport:
    """What a purge did (or, dry run, would do). ``anchor_id``: where verification now
    starts; ``broken_at``: the first row it refused to purge because its chain does not
    verify (0: the anchor itself is not ours, so nothing was purged)."""

    rows: int
    cutoff: datetime
    anchor_id: int
    dry_run: bool = False
    broken_at: int | None = None


def _old_prefix(rows: list[ChainRow], cutoff: datetime) -> list[ChainRow]:
    prefix = []
    for row in rows:
        if read_datetime(row.at) >= cutoff:
            break
        prefix.append(row)
    return prefix


async def _lock_anchor(session: AsyncSession, key: bytes, now: datetime) -> Mark | None:
    """Lock the anchor for this transaction (a write first: SQLite's write lock too)."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(SystemState).values(
        name=AUDIT_ANCHOR, value=START.encode(key, ANCHOR_LABEL), updated_at=now,
    ).on_conflict_do_nothing(index_elements=["name"]))
    value = (await session.execute(update(SystemState).where(_ANCHOR).values(updated_at=now)
                                   .returning(SystemState.value))).scalar_one()
    return Mark.decode(key, ANCHOR_LABEL, value)


async def _before_anchor(session: AsyncSession, anchor: Mark, cutoff: datetime, limit: int,
                         *, dry_run: bool) -> int:
    """Old rows up to the anchor (written before the chain existed): no chain to keep."""
    old = (AuditEvent.id <= anchor.id, AuditEvent.at < cutoff)
    if dry_run:
        return int((await session.execute(select(func.count()).select_from(AuditEvent)
                                          .where(*old))).scalar_one())
    ids = list((await session.execute(select(AuditEvent.id).where(*old)
                                      .order_by(AuditEvent.id).limit(limit))).scalars())
    if ids:
        await session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
    return len(ids)


async def _chained(session: AsyncSession, key: bytes, anchor: Mark, cutoff: datetime,
                   now: datetime, limit: int, *, dry_run: bool) -> tuple[int, Mark, int | None]:
    """Purge one batch of old chained rows after the anchor: (rows, new anchor, broken)."""
    found = await session.execute(select(*columns()).where(AuditEvent.id > anchor.id)
                                  .order_by(AuditEvent.id).limit(limit))
    old = _old_prefix(rows_of(found.all()), cutoff)
    failure = await asyncio.to_thread(first_failure, key, anchor.chain, old)
    purged = old if failure is None else old[:failure]
    broken_at = None if failure is None else old[failure].id
    if not purged:
        return 0, anchor, broken_at
    moved = Mark(purged[-1].id, purged[-1].chain or "")
    if not dry_run:
        await session.execute(update(SystemState).where(_ANCHOR).values(
            value=moved.encode(key, ANCHOR_LABEL), updated_at=now))
        await session.execute(delete(AuditEvent).where(AuditEvent.id > anchor.id,
                                                       AuditEvent.id <= moved.id))
    return len(purged), moved, broken_at


async def purge(db: Database, key: bytes, cutoff: datetime, now: datetime, *,
                dry_run: bool = False, batch: int = BATCH) -> PurgeReport:
    """Delete (or, dry run, count) audit rows older than ``cutoff``, oldest first; each
    batch is its own transaction, so a purge never holds the chain for long."""
    total = 0
    anchor = START
    if dry_run:
        value = await read_state(db, AUDIT_ANCHOR)
        found = START if value is None else Mark.decode(key, ANCHOR_LABEL, value)
        if found is None:
            return PurgeReport(0, cutoff, 0, dry_run, broken_at=0)
        anchor = found
        async with db.unit() as session:
            total += await _before_anchor(session, anchor, cutoff, batch, dry_run=True)
    while True:
        async with db.unit() as session:
            if not dry_run:
                locked = await _lock_anchor(session, key, now)
                if locked is None:  # forged or damaged: purge nothing; verification says
                    return PurgeReport(total, cutoff, 0, dry_run, broken_at=0)
                anchor = locked
                before = await _before_anchor(session, anchor, cutoff, batch, dry_run=False)
                total += before
                if before == batch:
                    continue
            count, anchor, broken_at = await _chained(session, key, anchor, cutoff, now,
                                                      batch, dry_run=dry_run)
        total += count
        if broken_at is not None or count < batch:
            return PurgeReport(total, cutoff, anchor.id, dry_run, broken_at)
