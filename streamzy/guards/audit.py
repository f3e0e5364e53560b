"""The audit trail: every security event is recorded here, once, as a row and a JSON line.

It is also the only reader of that trail: the admin console searches and exports it through
``search`` and ``export``, which hand out small frozen records, so the edges never touch
the storage models.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import csv
import io
import json
import logging
import logging.handlers
import queue
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Select, select

from streamzy.clock import Clock, as_utc
from streamzy.guards import audit_chain
from streamzy.guards.audit_retention import PurgeReport
from streamzy.guards.audit_retention import purge as purge_audit
from streamzy.guards.audit_verify import ChainReport, verify
from streamzy.guards.audit_windows import AuditWindows, Window
from streamzy.guards.context import RequestInfo, escape_text
from streamzy.periodic import Periodic
from streamzy.storage import system_state
from streamzy.storage.db import Database, is_sqlite
from streamzy.storage.models import AuditEvent

ExportFormat = Literal["csv", "json"]
EXPORT_COLUMNS = ("time", "event", "user_id", "ip", "user_agent", "request_id", "detail")
SECRET_HINTS = ("password", "token", "secret", "cookie", "authorization", "csrf", "pepper")
DETAIL_VALUE_MAX = 500
FLUSH_SECONDS = 5.0
VERIFY_TICK = 300.0
# What listeners hear when a row could not be stored (never a stored event name itself).
WRITE_FAILED = "audit_write_failed"
Listener = Callable[[str, int | None, str, dict[str, Any]], None]
# Set while the count rows of record_throttled windows are written (per task).
_COUNT_ROWS: contextvars.ContextVar[bool] = contextvars.ContextVar("audit_count_rows",
                                                                   default=False)
# Who acts when the server itself verifies or purges.
SERVER = RequestInfo(ip="local", user_agent="streamzy-server", request_id="")
# Not under "streamzy.audit": those loggers carry exactly one line per audit row.
CHAIN_LOG = logging.getLogger("streamzy.chain")

# aiosqlite traces every statement with its bound parameters (session CSRF tokens, emails)
# at DEBUG. SQLAlchemy pins its own loggers to WARN for this reason; do the same for the
# driver so a root logger at DEBUG never writes those values to the logs.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def scrub(detail: dict[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a secret; escape and cap the rest."""
    clean: dict[str, Any] = {}
    for key, value in detail.items():
        if any(hint in key.lower() for hint in SECRET_HINTS):
            clean[key] = "[redacted]"
        elif isinstance(value, bool | int | float) or value is None:
            clean[key] = value
        else:
            clean[key] = escape_text(str(value), DETAIL_VALUE_MAX)
    return clean


@dataclass(frozen=True)
class AuditQuery:
    """Which events to read back; empty fields match everything."""

    event: str = ""
    user_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One recorded event as the console shows it (``detail`` is the scrubbed JSON text)."""

    id: int
    at: datetime
    event: str
    user_id: int | None
    client_ip: str
    user_agent: str
    request_id: str
    detail: str

    def record(self) -> dict[str, Any]:
        """The entry as an export record (the same keys as the JSON log lines)."""
        return {"time": self.at.isoformat(), "event": self.event, "user_id": self.user_id,
                "ip": self.client_ip, "user_agent": self.user_agent,
                "request_id": self.request_id, "detail": json.loads(self.detail or "{}")}


@dataclass(frozen=True)
class Verification:
    """The last verification of the chain: when, and what it found."""

    at: datetime
    report: ChainReport


@dataclass(frozen=True)
class AuditExport:
    """An export document and how many events it holds."""

    text: str
    rows: int


def _neutralised(cell: Any) -> Any:
    """Spreadsheets run cells that start like a formula (CSV injection): make them text."""
    return f"'{cell}" if isinstance(cell, str) and cell[:1] in "=+-@\t\r" else cell


def _as_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for rec in records:
        cells = [rec["time"], rec["event"], rec["user_id"], rec["ip"], rec["user_agent"],
                 rec["request_id"], json.dumps(rec["detail"], ensure_ascii=True)]
        writer.writerow([_neutralised(c) for c in cells])
    return out.getvalue()


class AuditLog:
    """Writes audit rows and JSON lines; file writes happen on a background thread."""

    def __init__(self, db: Database, clock: Clock, path: str, *, chain_key: bytes,
                 verify_seconds: float = 0, retention_days: int = 0,
                 retention_interval: float = 0) -> None:
        self._db = db
        self._chain_key = chain_key
        self._postgres = not is_sqlite(db.url)
        self.verify_seconds = verify_seconds
        self.retention_days = retention_days
        # Each process looks every few minutes whether the shared last verification is
        # older than verify_seconds (so a restart never postpones it, and processes share it).
        self._verifier = Periodic("audit-verify", min(verify_seconds, VERIFY_TICK),
                                  self.verify_if_due, self._upkeep_failed)
        self._verifying: asyncio.Task[ChainReport] | None = None
        self._purger = Periodic("audit-retention",
                                retention_interval if retention_days else 0,
                                self.purge, self._upkeep_failed)
        self._clock = clock
        self._logger = logging.getLogger(f"streamzy.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._listener: logging.handlers.QueueListener | None = None
        self._windows = AuditWindows()
        self.write_failures = 0  # rows that could not be stored (database down or full)
        self._listeners: list[Listener] = []
        # the database may be down: the counts wait for the next turn
        self._flusher = Periodic("audit-repeats", FLUSH_SECONDS, self.flush_repeats,
                                 lambda exc: logging.getLogger("streamzy.audit").warning(
                                     "writing audit repeat counts failed"))
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(path, encoding="utf-8")
            file_handler.setFormatter(logging.Formatter("%(message)s"))
            log_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            self._logger.addHandler(logging.handlers.QueueHandler(log_queue))
            self._listener = logging.handlers.QueueListener(log_queue, file_handler)
            self._listener.start()

    async def record(
        self, event: str, info: RequestInfo, user_id: int | None = None, **detail: Any
    ) -> None:
        """Record one security event: a row chained to the previous one, and a JSON line
        that carries the same chain value (an outside copy of the chain)."""
        at = self._clock.now()
        clean = scrub(detail)
        values = {"at": at, "event": event, "user_id": user_id, "client_ip": info.ip,
                  "user_agent": info.user_agent, "request_id": info.request_id,
                  "detail": json.dumps(clean, ensure_ascii=False, sort_keys=True)}
        chain: str | None = None
        try:
            _, chain = await self._db.run_transaction(audit_chain.append, self._chain_key,
                                                      values, self._postgres)
        except Exception:
            self.write_failures += 1  # shown by /readyz; the JSON line still goes out
            self._tell(WRITE_FAILED, user_id, info.ip, {"event": event})
            raise
        finally:
            self._log_line(at, event, user_id, info, clean, chain)
            self._tell(event, user_id, info.ip, clean)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, user_id, ip, detail)`` after every event (and after every
        repeat that ``record_throttled`` folds into a count row, but not for that row); also
        with WRITE_FAILED when a row could not be stored. It must return at once."""
        self._listeners.append(listener)

    def _tell(self, event: str, user_id: int | None, ip: str, detail: dict[str, Any]) -> None:
        if _COUNT_ROWS.get() and event != WRITE_FAILED:
            return
        for listener in self._listeners:
            try:
                listener(event, user_id, ip, detail)
            except Exception:  # a watcher's bug never costs the event its record
                logging.getLogger("streamzy.audit").exception("audit listener failed")

    def _log_line(self, at: datetime, event: str, user_id: int | None, info: RequestInfo,
                  clean: dict[str, Any], chain: str | None) -> None:
        self._logger.info(json.dumps({
            "time": at.isoformat(), "event": event, "user_id": user_id, "ip": info.ip,
            "user_agent": info.user_agent, "request_id": info.request_id, "detail": clean,
            "chain": chain,
        }, ensure_ascii=True, sort_keys=True))

    async def record_throttled(self, key: str, event: str, info: RequestInfo,
                               user_id: int | None = None, *, every: float = 60.0,
                               **detail: Any) -> None:
        """Record ``event`` at most once per ``every`` seconds for ``key``; the repeats in
        that window are recorded as one more row with their count when it ends."""
        now = self._clock.now().timestamp()
        first, closed = self._windows.hit(key, now, every, event, info, user_id, detail)
        await self._record_repeats(closed)
        if first:
            await self.record(event, info, user_id, **detail)
        else:
            self._tell(event, user_id, info.ip, scrub(detail))

    async def flush_repeats(self, *, everything: bool = False) -> None:
        """Write the count rows of windows that have ended (all open ones at shutdown)."""
        now = self._clock.now().timestamp()
        await self._record_repeats(self._windows.closed(now, everything=everything))

    async def _record_repeats(self, windows: list[Window]) -> None:
        token = _COUNT_ROWS.set(True)  # listeners heard each repeat already
        try:
            for window in windows:
                await self.record(window.event, window.info, window.user_id, **window.detail,
                                  repeated=window.repeats, window_seconds=window.every)
        finally:
            _COUNT_ROWS.reset(token)

    def start(self) -> None:
        """Write repeat counts as their windows end, even when nothing else arrives; verify
        the chain and purge old rows on their schedules."""
        self._flusher.start()
        self._verifier.start()
        self._purger.start()

    async def stop(self) -> None:
        """Stop the flusher and write every pending count (best effort at shutdown)."""
        await self._verifier.stop()
        await self._purger.stop()
        await self._flusher.stop()
        if self._verifying is not None and not self._verifying.done():
            self._verifying.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._verifying
        with contextlib.suppress(Exception):
            await self.flush_repeats(everything=True)

    @staticmethod
    def _upkeep_failed(exc: Exception) -> None:
        CHAIN_LOG.warning("audit chain upkeep failed (%s); next round retries",
                          type(exc).__name__)

    async def verify_chain(self, info: RequestInfo = SERVER, user_id: int | None = None, *,
                           requested: bool = False) -> ChainReport:
        """Verify the whole chain, keep the result (AUDIT_VERIFIED) for the console, and
        audit a break (and, when someone asked for it, the verification itself)."""
        report = await verify(self._db, self._chain_key)
        now = self._clock.now()
        await system_state.write_json(self._db, system_state.AUDIT_VERIFIED,
                                      report.state(now), now)
        if not report.ok:
            CHAIN_LOG.error("audit %s", report.summary())
            await self.record("audit_chain_broken", info, user_id, first_bad=report.first_bad,
                              kind=report.kind, rows=report.rows)
        elif requested:
            await self.record("audit_chain_verified", info, user_id, rows=report.rows,
                              last_id=report.last_id)
        return report

    def start_verification(self, info: RequestInfo, user_id: int | None) -> asyncio.Task[
            ChainReport]:
        """Verify in the background (a whole-table walk can outlast a request through a
        proxy); a verification already running in this process is joined, not repeated."""
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.get_running_loop().create_task(
                self.verify_chain(info, user_id, requested=True), name="audit-verify")
            self._verifying.add_done_callback(self._verification_done)
        return self._verifying

    @staticmethod
    def _verification_done(task: asyncio.Task[ChainReport]) -> None:
        if not task.cancelled() and task.exception() is not None:
            CHAIN_LOG.warning("audit chain verification failed (%s)",
                              type(task.exception()).__name__)

    @property
    def verifying(self) -> bool:
        """Whether a verification started from the console is still running here."""
        return self._verifying is not None and not self._verifying.done()

    async def verify_if_due(self) -> ChainReport | None:
        """Verify when the last verification (by any process) is older than the period."""
        last = await system_state.read(self._db, system_state.AUDIT_VERIFIED)
        if last is not None and (self._clock.now() - as_utc(last[1])).total_seconds() < \
                self.verify_seconds:
            return None
        return await self.verify_chain()

    async def last_verification(self) -> Verification | None:
        """When the chain was last verified and what was found (None: never)."""
        state = await system_state.read_json(self._db, system_state.AUDIT_VERIFIED)
        if state is None:
            return None
        try:
            fields = {name: state[name] for name in ChainReport.__dataclass_fields__}
            return Verification(datetime.fromisoformat(state["at"]), ChainReport(**fields))
        except (KeyError, TypeError, ValueError):
            return None

    async def purge(self, *, dry_run: bool = False, info: RequestInfo = SERVER,
                    user_id: int | None = None) -> PurgeReport | None:
        """Purge rows older than the audit retention (None when rows are kept for ever);
        the purge is audited, and a break it found is too."""
        if self.retention_days <= 0:
            return None
        now = self._clock.now()
        cutoff = now - timedelta(days=self.retention_days)
        report = await purge_audit(self._db, self._chain_key, cutoff, now, dry_run=dry_run)
        if report.rows and not dry_run:
            await self.record("audit_purged", info, user_id, rows=report.rows,
                              cutoff=cutoff.isoformat(), anchor_id=report.anchor_id)
        if report.broken_at is not None:
            CHAIN_LOG.error("audit purge stopped: the chain does not verify at row %s",
                            report.broken_at)
            await self.verify_chain(info, user_id)  # says how it broke: console, audit, log
        return report

    @staticmethod
    def _select(query: AuditQuery) -> Select[tuple[AuditEvent]]:
        statement = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if query.event:
            statement = statement.where(AuditEvent.event == query.event)
        if query.user_id is not None:
            statement = statement.where(AuditEvent.user_id == query.user_id)
        if query.since is not None:
            statement = statement.where(AuditEvent.at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditEvent.at <= query.until)
        return statement

    async def search(self, query: AuditQuery, *, limit: int, offset: int = 0) -> list[AuditEntry]:
        """Matching events, newest first."""
        async with self._db.unit() as db:
            rows = (await db.execute(self._select(query).limit(limit).offset(offset))).scalars()
            return [AuditEntry(id=row.id, at=row.at, event=row.event, user_id=row.user_id,
                               client_ip=row.client_ip, user_agent=row.user_agent,
                               request_id=row.request_id, detail=row.detail)
                    for row in rows]

    async def event_names(self) -> list[str]:
        """Every event name recorded so far, sorted (the console offers them as filters)."""
        async with self._db.unit() as db:
            names = await db.execute(select(AuditEvent.event).distinct().order_by(AuditEvent.event))
            return list(names.scalars())

    async def export(self, query: AuditQuery, fmt: ExportFormat, info: RequestInfo,
                     user_id: int | None, *, limit: int) -> AuditExport:
        """Up to ``limit`` matching events as a CSV or JSON document; the export is audited."""
        entries = await self.search(query, limit=limit)
        await self.record("audit_exported", info, user_id, format=fmt, rows=len(entries))
        records = [entry.record() for entry in entries]
        text = (json.dumps(records, ensure_ascii=True, indent=1) if fmt == "json"
                else _as_csv(records))
        return AuditExport(text, len(entries))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            for handler in list(self._logger.handlers):
                self._logger.removeHandler(handler)
