"""One piece of background work run every N seconds until stopped (the session sweep, the
unauthenticated-socket deadline, the audit repeat counts). A failed round is reported to
``on_error`` and the next round runs: background work must not die of one outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("streamzy")


def retry_quietly(name: str) -> Callable[[Exception], None]:
    """An ``on_error`` for work that fails while the database or Redis is away: one warning
    line naming the error's type (no traceback per round), and the next round retries."""
    def warn(exc: Exception) -> None:
        log.warning("%s failed (%s); the next round retries", name, type(exc).__name__)
    return warn


class Periodic:
    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]],
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._on_error = on_error or (lambda exc: log.exception("%s failed", name))
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._work()
            except Exception as exc:
                self._on_error(exc)

    def start(self) -> None:
        """Start (once; an interval of 0 or less means never)."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
