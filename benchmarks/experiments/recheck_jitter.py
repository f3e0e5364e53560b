"""Experiment: spread the per-socket session re-checks instead of letting them align.

ChatEvents re-reads a socket's session from the database when its last check is older
than RECHECK_SECONDS. Sockets that connected together (a reconnect wave after a restart,
or a benchmark) then re-check together, every few seconds, each in its own unit of work:
a burst of N queries through a pool of 5 (+10 overflow, opened and closed on the spot)
while those sockets' events wait behind their per-connection lock. Here each recorded
check time is moved back by a random 0-50 % of the interval, so the re-checks spread out
and never come back in step. Same bound on staleness (it only gets shorter).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from streamzy.realtime import events as events_module


class _Jittered(dict):  # type: ignore[type-arg]
    def __setitem__(self, sid: str, value: tuple[Any, Any]) -> None:
        checked_at, last_seen = value
        spread = random.uniform(0, 0.5) * events_module.RECHECK_SECONDS
        super().__setitem__(sid, (checked_at - timedelta(seconds=spread), last_seen))


def install(chat_events: Any) -> None:
    chat_events._checked = _Jittered(chat_events._checked)
