"""Verifying the audit chain: walk the rows in id order from the anchor, say where it breaks
and how.

Rows are read in pages (bounded memory) and their HMACs computed on a worker thread. The
first row that fails is classified:

* ``edited``: its own tag fails and the next row still follows it (its content changed);
* ``inserted``: its tag fails and the next row follows the row before it, or it lies
  beyond the head (a forged row, with or without a chain value);
* ``deleted``: its tag holds but it does not follow the row before it (rows between were
  removed);
* ``truncated``: every row holds but the head names a later row than the last one found;
* ``head`` / ``anchor``: the head or the anchor in ``system_state`` was altered, removed or
  does not match the rows.

Moving a row (changing its id) changes what its tag covers, so it is reported as
``edited`` where it now stands and as ``deleted`` where it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from streamzy.guards.audit_chain import (
    ANCHOR_LABEL,
    HEAD_LABEL,
    START,
    ChainRow,
    Mark,
    link_holds,
    rows_of,
    tag_holds,
)
from streamzy.storage.db import Database
from streamzy.storage.models import AuditEvent, SystemState
from streamzy.storage.system_state import AUDIT_ANCHOR, AUDIT_HEAD

PAGE = 1000
HEAD_ROUNDS = 5  # re-reads of the head while writers keep appending during a walk
ANCHOR_ROUNDS = 3  # restarts when a purge moved the anchor during a walk


@dataclass(frozen=True)
class ChainReport:
    """What a verification found. ``rows``: rows whose chain was checked; ``last_id``: the
    last of them; ``not_covered``: rows before the anchor (written before the chain
    existed), which the chain does not protect."""

    ok: bool
    rows: int
    last_id: int | None
    first_bad: int | None = None
    kind: str = ""
    not_covered: int = 0
    anchor_id: int = 0

    def summary(self) -> str:
        if self.ok:
            text = f"chain intact: {self.rows} rows, up to id {self.last_id or 0}"
            if self.not_covered:
                text += (f" ({self.not_covered} older rows, up to id {self.anchor_id}, "
                         "predate the chain and are not covered)")
            return text
        return f"chain BROKEN at row {self.first_bad}: {self.kind} ({self.meaning})"

    @property
    def meaning(self) -> str:
        """What the kind of break says happened, in words."""
        return EXPLAIN.get(self.kind, "")

    def state(self, at: datetime) -> dict[str, Any]:
        """The record kept in ``system_state`` (AUDIT_VERIFIED) and shown by the console."""
        return {"at": at.isoformat(), **asdict(self)}


EXPLAIN = {
    "edited": "the row's content no longer matches its chain value",
    "inserted": "the row was not written by Streamzy: it fits nowhere in the chain",
    "deleted": "one or more rows before this one were removed",
    "truncated": "rows at the end were removed: the chain head names a later row",
    "head": "the chain head was altered, removed or does not match the last row",
    "anchor": "the anchor where verification starts was altered",
}


def columns() -> tuple[Any, ...]:
    return (AuditEvent.id, AuditEvent.at, AuditEvent.event, AuditEvent.user_id,
            AuditEvent.client_ip, AuditEvent.user_agent, AuditEvent.request_id,
            AuditEvent.detail, AuditEvent.chain)


async def _page(db: Database, after: int, limit: int) -> list[ChainRow]:
    async with db.unit() as session:
        found = await session.execute(select(*columns()).where(AuditEvent.id > after)
                                      .order_by(AuditEvent.id).limit(limit))
        return rows_of(found.all())


async def read_state(db: Database, name: str) -> str | None:
    async with db.unit() as session:
        row = await session.get(SystemState, name, populate_existing=True)
        return None if row is None else row.value


async def _not_covered(db: Database, anchor_id: int) -> int:
    if not anchor_id:
        return 0
    async with db.unit() as session:
        return int((await session.execute(select(func.count()).select_from(AuditEvent)
                                          .where(AuditEvent.id <= anchor_id))).scalar_one())


def first_failure(key: bytes, previous: str, rows: list[ChainRow]) -> int | None:
    """Index of the first row that does not follow ``previous`` (blocking: many HMACs)."""
    for index, row in enumerate(rows):
        if not link_holds(key, previous, row):
            return index
        previous = row.chain or ""
    return None


async def _classify(db: Database, key: bytes, previous: str, bad: ChainRow,
                    head: Mark | None) -> str:
    if tag_holds(key, bad):
        return "deleted"
    following = await _page(db, bad.id, 1)
    if following:
        nxt = following[0]
        if link_holds(key, previous, nxt):
            return "inserted"
        return "edited"
    return "inserted" if head is not None and head.id < bad.id else "edited"


async def _walk(db: Database, key: bytes, page: int) -> tuple[ChainReport, str | None]:
    anchor_value = await read_state(db, AUDIT_ANCHOR)
    anchor = START if anchor_value is None else Mark.decode(key, ANCHOR_LABEL, anchor_value)
    if anchor is None:
        return ChainReport(False, 0, None, None, "anchor"), anchor_value
    not_covered = await _not_covered(db, anchor.id)
    last = anchor
    checked = 0

    def report(ok: bool, first_bad: int | None = None, kind: str = "") -> ChainReport:
        return ChainReport(ok, checked, last.id or None, first_bad, kind, not_covered,
                           anchor.id)

    for _round in range(HEAD_ROUNDS):
        head_value = await read_state(db, AUDIT_HEAD)  # read before the rows it must cover
        head = None if head_value is None else Mark.decode(key, HEAD_LABEL, head_value)
        while rows := await _page(db, last.id, page):
            index = await asyncio.to_thread(first_failure, key, last.chain, rows)
            good = rows if index is None else rows[:index]
            checked += len(good)
            if good:
                last = Mark(good[-1].id, good[-1].chain or "")
            if index is not None:
                kind = await _classify(db, key, last.chain, rows[index], head)
                return report(False, rows[index].id, kind), anchor_value
        # A head problem is reported at the last row: the one the head should name.
        if head_value is None:
            if checked == 0 and anchor_value is None:
                return report(True), anchor_value  # nothing chained yet
            return report(False, last.id, "head"), anchor_value
        if head is None or head.restored:
            return report(False, last.id, "head"), anchor_value
        if head.id > last.id:
            return report(False, head.id, "truncated"), anchor_value
        if head.id == last.id:
            ok = head.chain == last.chain
            return report(ok, None if ok else last.id, "" if ok else "head"), anchor_value
        # head.id < last.id: rows appended after the head was read; read it again
    return report(False, last.id, "head"), anchor_value


async def verify(db: Database, key: bytes, *, page: int = PAGE) -> ChainReport:
    """Walk the whole chain from the anchor; the first break, or how much holds.

    A purge may move the anchor (and delete the rows before it) during a walk: a break
    found while the anchor moved is checked again from the new anchor."""
    for _attempt in range(ANCHOR_ROUNDS):
        found, anchor_value = await _walk(db, key, page)
        if found.ok or await read_state(db, AUDIT_ANCHOR) == anchor_value:
            return found
    return found
