"""Throttled audit events: one row when a window opens, one row with the count when it
closes, so a flood is on the record as two rows with a number, not as thousands of rows
and not as nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamzy.guards.context import RequestInfo

MAX_OPEN = 50_000  # keys; past this the oldest windows are closed early


@dataclass
class Window:
    key: str
    event: str
    started: float
    every: float
    info: RequestInfo  # of the latest repeat
    user_id: int | None
    detail: dict[str, Any] = field(default_factory=dict)
    repeats: int = 0

    def open_at(self, now: float) -> bool:
        return now - self.started < self.every


class AuditWindows:
    def __init__(self) -> None:
        self._open: dict[str, Window] = {}

    def hit(self, key: str, now: float, every: float, event: str, info: RequestInfo,
            user_id: int | None, detail: dict[str, Any]) -> tuple[bool, list[Window]]:
        """(whether to record this one, windows that closed with repeats to record)."""
        window = self._open.get(key)
        if window is not None and window.open_at(now):
            window.repeats += 1
            window.info, window.user_id = info, user_id
            return False, []
        closed = [window] if window is not None and window.repeats else []
        if len(self._open) >= MAX_OPEN:
            closed += [w for w in self._open.values() if w.repeats]
            self._open.clear()
        self._open[key] = Window(key, event, now, every, info, user_id, dict(detail))
        return True, closed

    def closed(self, now: float, *, everything: bool = False) -> list[Window]:
        """Windows that ended (all of them with ``everything``), forgotten once returned;
        only those with repeats need a row."""
        ended = [w for w in self._open.values() if everything or not w.open_at(now)]
        for window in ended:
            del self._open[window.key]
        return [w for w in ended if w.repeats]
