"""Alerts: thresholds over the audit events, watched as they are recorded.

The audit log tells ``observe`` about every event (guards/audit.py ``add_listener``);
``observe`` only picks out the watched ones and queues them, so recording an event never
waits on counting. One worker task counts each in its window (memory, or Redis shared by
every process) and, when a count reaches its threshold, fires an alert: an audit event
``alert`` (kind, key, count, window), the banner in the admin console (which reads those
rows), and, when configured, a signed webhook sent in the background. One alert per kind
and key per cool-down: counting goes on, and the next alert says how many it held back.

The alert's own audit event is never counted (its ``alert`` name is not watched, and
anything recorded while an alert is being written, such as a failure to store it, is
ignored), so an alert can never feed itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streamzy.clock import Clock, as_utc
from streamzy.config import Rate, Settings
from streamzy.services.alert_counts import AlertCounts
from streamzy.services.alert_webhook import AlertWebhook
from streamzy.storage import system_state
from streamzy.storage.db import Database

log = logging.getLogger("streamzy.alerts")
Audit = Callable[..., Awaitable[None]]
ALERT_EVENT = "alert"
ACKNOWLEDGED = "alerts_acknowledged"  # system_state: when an admin last dismissed the banner
BANNER_HOURS = 24
QUEUE_LIMIT = 10_000
KEY_MAX = 100
WRITE_FAILED = "audit_write_failed"  # what the audit log tells listeners (guards/audit.py)

# Which audit events feed which alert, and what each is counted by.
Keyer = Callable[[int | None, str, dict[str, Any]], str | None]
WATCHED: dict[str, tuple[tuple[str, Keyer], ...]] = {
    "login_failed": (
        ("failed_signins_per_address", lambda user_id, ip, detail: ip or None),
        ("failed_signins_per_account",
         lambda user_id, ip, detail: str(user_id) if user_id is not None else None),
    ),
    "account_locked": (("lockouts", lambda user_id, ip, detail: "server"),),
    "socket_refused": (("refused_sockets", lambda user_id, ip, detail: ip or None),),
    WRITE_FAILED: (("audit_write_failures", lambda user_id, ip, detail: "server"),),
    "message_unreadable": (("unreadable_messages",
                            lambda user_id, ip, detail: f"room {detail.get('room_id')}"),),
}
KINDS = tuple(kind for rules in WATCHED.values() for kind, _ in rules)

# Set while an alert is being recorded: whatever that recording causes is not counted.
_FIRING: contextvars.ContextVar[bool] = contextvars.ContextVar("alert_firing", default=False)


def _escaped(key: str) -> str:
    """Keys come from requests (an address): printable, bounded, never markup."""
    clean = "".join(ch if ch.isprintable() and ch not in "<>&\"'" else "?" for ch in key)
    return clean[:KEY_MAX]


@dataclass(frozen=True)
class Fired:
    """One alert as it was raised (also what the webhook carries)."""

    kind: str
    key: str
    count: int
    threshold: int
    window_seconds: int
    suppressed: int
    at: datetime

    def payload(self) -> dict[str, Any]:
        return {"type": "streamzy.alert", "id": uuid.uuid4().hex, "kind": self.kind,
                "key": self.key, "count": self.count, "threshold": self.threshold,
                "window_seconds": self.window_seconds, "suppressed": self.suppressed,
                "at": self.at.isoformat()}


class Alerts:
    def __init__(self, settings: Settings, clock: Clock, db: Database, audit: Audit,
                 counts: AlertCounts, info: Any, webhook: AlertWebhook | None = None) -> None:
        self._thresholds: dict[str, Rate] = {}
        for kind in KINDS:
            rate = settings.alert_threshold(kind)
            if rate is not None:
                self._thresholds[kind] = rate
        self._cooldown = float(settings.alert_cooldown_seconds)
        self._clock = clock
        self._db = db
        self._audit = audit
        self._counts = counts
        self._info = info
        self.webhook = webhook
        self._pending: asyncio.Queue[tuple[str, str, float]] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.fired: list[Fired] = []  # this process's alerts, newest last (bounded)
        self.dropped = 0

    # -- the listener: called inside AuditLog.record, must return at once --------------------
    def observe(self, event: str, user_id: int | None, ip: str, detail: dict[str, Any]) -> None:
        rules = WATCHED.get(event)
        if rules is None or _FIRING.get():
            return
        now = self._clock.now().timestamp()
        for kind, keyer in rules:
            if kind not in self._thresholds:
                continue
            key = keyer(user_id, ip, detail)
            if key is None:
                continue
            try:
                self._pending.put_nowait((kind, _escaped(key), now))
            except asyncio.QueueFull:  # a flood outruns counting: the next events still count
                self.dropped += 1
                continue
            if (self._worker is None or self._worker.done()) and not self._closed:
                self._worker = asyncio.get_running_loop().create_task(self._run(),
                                                                      name="alerts")

    async def _run(self) -> None:
        while True:
            kind, key, at = await self._pending.get()
            try:
                await self._count(kind, key, at)
            except Exception:
                log.exception("alert counting failed (%s)", kind)
            finally:
                self._pending.task_done()

    async def _count(self, kind: str, key: str, at: float) -> None:
        rate = self._thresholds[kind]
        count = await self._counts.hit(f"{kind}:{key}", at, rate.period)
        if count < rate.count:
            return
        suppressed = await self._counts.claim(f"{kind}:{key}", at, self._cooldown)
        if suppressed is None:
            return
        await self._fire(Fired(kind, key, count, rate.count, int(rate.period), suppressed,
                               self._clock.now()))

    async def _fire(self, alert: Fired) -> None:
        self.fired = [*self.fired[-99:], alert]
        token = _FIRING.set(True)
        try:
            await self._audit(ALERT_EVENT, self._info, None, kind=alert.kind, key=alert.key,
                              count=alert.count, threshold=alert.threshold,
                              window_seconds=alert.window_seconds,
                              suppressed=alert.suppressed)
        except Exception:  # the database is down (maybe the very alert): the webhook still goes
            log.warning("alert %s (%s) not stored in the audit table", alert.kind, alert.key)
        finally:
            _FIRING.reset(token)
        log.warning("ALERT %s key=%s count=%d in %d s (threshold %d, %d held back)",
                    alert.kind, alert.key, alert.count, alert.window_seconds,
                    alert.threshold, alert.suppressed)
        if self.webhook is not None:
            self.webhook.send(alert.payload(), int(alert.at.timestamp()))

    async def settled(self) -> None:
        """Wait until every observed event was counted and its webhook (if any) was sent
        or given up (tests; bounded by the caller's timeout)."""
        await self._pending.join()
        if self.webhook is not None:
            await self.webhook.settled()

    # -- the admin console's banner ------------------------------------------------------------
    async def banner_since(self) -> datetime:
        """Alerts after this time show in the banner: the last 24 hours, or since an admin
        acknowledged them, whichever is later."""
        since = self._clock.now() - timedelta(hours=BANNER_HOURS)
        found = await system_state.read(self._db, ACKNOWLEDGED)
        if found is not None:
            with contextlib.suppress(ValueError):
                since = max(since, as_utc(datetime.fromisoformat(found[0])))
        return since

    async def acknowledge(self, user_id: int, info: Any) -> None:
        """An admin has seen the alerts so far: the banner hides them (they stay audited)."""
        now = self._clock.now()
        async with self._db.unit() as session:
            await system_state.write(session, ACKNOWLEDGED, now.isoformat(), now)
        await self._audit("alerts_acknowledged", info, user_id)

    async def close(self) -> None:
        # Audit rows written after this (the log's own shutdown flush) start no new worker.
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.webhook is not None:
            await self.webhook.close()
        await self._counts.close()
