"""Reporting a message to the admins, and the admins' queue of reports.

Any member may report a message of their room with a reason; the reason is sealed with the
room's key like the messages themselves (a stolen database does not show it, and
destroying the room key shreds it). One open report per person and message: reporting it
again answers with the same report. The queue shows admins each reported message opened,
with a few messages around it, who reported it and when; reading it is audited, since it
shows message content to someone who may not be in the room. Reports in direct
conversations reach the queue too: the reporter chose to show that conversation to the
admins (who cannot moderate it, but can act on the accounts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from streamzy.clock import Clock, as_utc
from streamzy.config import Rate
from streamzy.services.errors import Forbidden, NotFound, RateLimited, Unavailable
from streamzy.services.key_versions import lock_room_version_in
from streamzy.services.message_history import MessageHistory, StoredMessage
from streamzy.services.posting import Limiter
from streamzy.storage.crypto import Keyring
from streamzy.storage.db import Database
from streamzy.storage.models import Membership, Message, Report, Room, User

Audit = Callable[..., Awaitable[None]]
Status = Literal["open", "resolved", "dismissed"]
REASON_MAX = 500
RESEAL_ATTEMPTS = 3
CONTEXT = 3  # messages shown before and after the reported one
PAGE = 20
REPORT_RATE = Rate(20, 3600)  # reports per person and hour


@dataclass(frozen=True)
class Receipt:
    id: int
    duplicate: bool


@dataclass(frozen=True)
class ReportView:
    """One report as the queue shows it: the message opened, with its neighbours."""

    id: int
    status: str
    created_at: datetime
    room_id: int
    room_name: str
    room_kind: str
    reporter: str
    reason: str | None  # None: it cannot be opened (the room key was destroyed)
    message_id: int
    message: StoredMessage | None  # None: the message is gone
    before: list[StoredMessage]
    after: list[StoredMessage]
    resolved_by: str | None
    resolved_at: datetime | None


@dataclass(frozen=True)
class Queue:
    reports: list[ReportView]
    open_count: int
    has_more: bool


class Reports:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, history: MessageHistory,
                 limiter: Limiter, audit: Audit, audit_throttled: Audit) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._history = history
        self._limiter = limiter
        self._audit = audit
        self._audit_throttled = audit_throttled

    async def report(self, reporter_id: int, room_id: int, message_id: int, reason: str,
                     info: Any) -> Receipt:
        """Report a message of a room the reporter belongs to; the reason is sealed."""
        async with self._db.unit() as db:
            room = await db.get(Room, room_id)
            if room is None:
                raise NotFound("unknown_room", "No such room.")
            if await db.get(Membership, (room_id, reporter_id)) is None:
                await self._audit_throttled(f"room-access:{reporter_id}:{room_id}",
                                            "room_access_denied", info, reporter_id,
                                            room_id=room_id, on="report")
                raise Forbidden("not_a_member", "You are not a member of this room.")
            message = await db.get(Message, message_id)
            if message is None or message.room_id != room_id or message.deleted_at is not None:
                raise NotFound("unknown_message", "No such message in this room.")
            existing = (await db.execute(select(Report.id).where(
                Report.message_id == message_id, Report.reporter_id == reporter_id,
                Report.status == "open"))).scalar_one_or_none()
            key_version = room.key_version
        if existing is not None:
            return Receipt(existing, True)
        decision = await self._limiter.hit(f"reports:{reporter_id}", REPORT_RATE)
        if not decision.allowed:
            await self._audit_throttled(f"reports:{reporter_id}", "rate_limited", info,
                                        reporter_id, limit="reports")
            raise RateLimited("reports", decision.retry_after)
        for _attempt in range(RESEAL_ATTEMPTS):
            sealed = await self._keyring.seal(room_id, key_version, reason[:REASON_MAX])
            async with self._db.unit() as db:
                # Lock the room and re-read its key version (services/key_versions.py): a
                # rotation may have moved on since; seal again with the current one.
                current = await lock_room_version_in(db, room_id)
                if current is None:
                    raise NotFound("unknown_room", "No such room.")
                if current != key_version:
                    key_version = current
                    continue
                row = Report(room_id=room_id, message_id=message_id, reporter_id=reporter_id,
                             key_version=key_version, reason_ciphertext=sealed,
                             created_at=self._clock.now(), status="open")
                db.add(row)
                await db.flush()
                report_id = row.id
                break
        else:
            raise Unavailable("busy", "The room is being re-encrypted; try again.")
        # The reason is content: sealed in the table, never written to the audit trail.
        await self._audit("message_reported", info, reporter_id, room_id=room_id,
                          message_id=message_id, report_id=report_id)
        return Receipt(report_id, False)

    async def queue(self, status: Status | Literal["all"], page: int, admin_id: int,
                    info: Any) -> Queue:
        """A page of reports (open ones oldest first; decided ones newest first)."""
        reporter, resolver = aliased(User), aliased(User)
        statement = (select(Report, Room, Message.seq, reporter.username, resolver.username)
                     .join(Room, Room.id == Report.room_id)
                     .outerjoin(Message, Message.id == Report.message_id)
                     .outerjoin(reporter, reporter.id == Report.reporter_id)
                     .outerjoin(resolver, resolver.id == Report.resolved_by))
        if status != "all":
            statement = statement.where(Report.status == status)
        oldest_first = status == "open"
        statement = statement.order_by(Report.created_at.asc() if oldest_first
                                       else Report.created_at.desc(), Report.id)
        async with self._db.unit() as db:
            rows = list(await db.execute(statement.limit(PAGE + 1).offset((page - 1) * PAGE)))
            open_count = await db.scalar(select(func.count()).select_from(Report)
                                         .where(Report.status == "open")) or 0
        views = [await self._view(*row, info=info) for row in rows[:PAGE]]
        if views:
            await self._audit("reports_viewed", info, admin_id, status=status, page=page,
                              report_ids=",".join(str(v.id) for v in views))
        return Queue(views, int(open_count), len(rows) > PAGE)

    async def _view(self, report: Report, room: Room, seq: int | None, reporter: str | None,
                    resolver: str | None, *, info: Any) -> ReportView:
        reason = await self._keyring.open(report.room_id, report.key_version,
                                          bytes(report.reason_ciphertext))
        message, before, after = None, [], []
        if seq is not None:
            before, _ = await self._history.page(report.room_id, seq, CONTEXT, info)
            around, _ = await self._history.since(report.room_id, seq - 1, CONTEXT + 1, info)
            if around and around[0].seq == seq:
                message, after = around[0], around[1:]
            else:
                after = around
        return ReportView(report.id, report.status, as_utc(report.created_at), room.id,
                          room.name, room.kind or "room", reporter or "[deleted]", reason,
                          report.message_id, message, before, after, resolver,
                          as_utc(report.resolved_at) if report.resolved_at else None)

    async def decide(self, admin_id: int, report_id: int, outcome: Status,
                     info: Any) -> None:
        """Mark a report resolved (acted on) or dismissed (nothing to do)."""
        if outcome not in ("resolved", "dismissed"):
            raise NotFound("unknown_outcome", "Resolve or dismiss.")
        async with self._db.unit() as db:
            report = await db.get(Report, report_id)
            if report is None:
                raise NotFound("unknown_report", "No such report.")
            report.status = outcome
            report.resolved_by = admin_id
            report.resolved_at = self._clock.now()
            room_id, message_id = report.room_id, report.message_id
        await self._audit(f"report_{outcome}", info, admin_id, report_id=report_id,
                          room_id=room_id, message_id=message_id)
