"""The audit trail: every security event is recorded here, once, as a row and a JSON line."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
from pathlib import Path
from typing import Any

from streamzy.clock import Clock
from streamzy.guards.context import RequestInfo, escape_text
from streamzy.storage.db import Database
from streamzy.storage.models import AuditEvent

SECRET_HINTS = ("password", "token", "secret", "cookie", "authorization", "csrf", "pepper")
DETAIL_VALUE_MAX = 500

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


class AuditLog:
    """Writes audit rows and JSON lines; file writes happen on a background thread."""

    def __init__(self, db: Database, clock: Clock, path: str) -> None:
        self._db = db
        self._clock = clock
        self._logger = logging.getLogger(f"streamzy.audit.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._listener: logging.handlers.QueueListener | None = None
        self._last_throttled: dict[str, float] = {}
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
        """Record one security event."""
        at = self._clock.now()
        clean = scrub(detail)
        row = AuditEvent(
            at=at, event=event, user_id=user_id, client_ip=info.ip,
            user_agent=info.user_agent, request_id=info.request_id,
            detail=json.dumps(clean, ensure_ascii=False, sort_keys=True),
        )
        async with self._db.unit() as session:
            session.add(row)
        self._logger.info(json.dumps({
            "time": at.isoformat(), "event": event, "user_id": user_id, "ip": info.ip,
            "user_agent": info.user_agent, "request_id": info.request_id, "detail": clean,
        }, ensure_ascii=True, sort_keys=True))

    async def record_throttled(self, key: str, event: str, info: RequestInfo,
                               user_id: int | None = None, *, every: float = 60.0,
                               **detail: Any) -> None:
        """Record ``event`` at most once per ``every`` seconds for ``key`` (floods stay short)."""
        now = self._clock.now().timestamp()
        if now - self._last_throttled.get(key, float("-inf")) < every:
            return
        if len(self._last_throttled) > 50_000:
            self._last_throttled.clear()
        self._last_throttled[key] = now
        await self.record(event, info, user_id, **detail)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
            for handler in list(self._logger.handlers):
                self._logger.removeHandler(handler)
