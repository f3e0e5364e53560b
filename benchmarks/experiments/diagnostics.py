"""Diagnostics for a Streamzy process under load (benchmark use only).

Every second, appends one JSON line to $STREAMZY_DIAG_PATH: the event loop's worst lag
(a 5 ms ticker), garbage-collector pauses, group-commit batches (count, sizes, worst wall
time) and how many session re-checks reached the database.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from collections.abc import Callable
from typing import Any


def time_writes(messages: Any, record: Callable[[int, float], None]) -> None:
    """Call ``record(batch size, wall ms)`` after every group-commit transaction."""
    messages.observe_batches(record)


class Diagnostics:
    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path
        self.reset()
        self._gc_t0 = 0.0
        gc.callbacks.append(self._gc)
        time_writes(app.services.messages, self._write_done)
        sessions = app.services.sessions
        check = sessions.check

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.checks += 1
            t0 = time.perf_counter()
            try:
                return await check(*args, **kwargs)
            finally:
                self.check_max = max(self.check_max, (time.perf_counter() - t0) * 1000)

        sessions.check = counted
        self._task: asyncio.Task[None] | None = None

    def _write_done(self, size: int, ms: float) -> None:
        self.batches += 1
        self.batched += size
        self.write_max = max(self.write_max, ms)

    def reset(self) -> None:
        self.lag_max = self.gc_max = self.write_max = self.check_max = 0.0
        self.gc_full = self.batches = self.batched = self.checks = 0

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_max = max(self.gc_max, (time.perf_counter() - self._gc_t0) * 1000)
            self.gc_full += info.get("generation") == 2

    async def run(self) -> None:
        last = time.perf_counter()
        report_at = last + 1
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.lag_max = max(self.lag_max, (now - last - 0.005) * 1000)
            last = now
            if now >= report_at:
                report_at = now + 1
                line = {"t": round(time.time(), 1), "loop_lag_ms": round(self.lag_max, 1),
                        "gc_ms": round(self.gc_max, 1), "gc_full": self.gc_full,
                        "batches": self.batches, "batched": self.batched,
                        "write_ms_max": round(self.write_max, 1), "checks": self.checks,
                        "check_ms_max": round(self.check_max, 1)}
                with open(self.path, "a") as out:  # noqa: ASYNC230 - one short line a second
                    out.write(json.dumps(line) + "\n")
                self.reset()


def install(app: Any) -> None:
    path = os.environ.get("STREAMZY_DIAG_PATH")
    if not path:
        return
    diag = Diagnostics(app, path)

    @app.quart.before_serving
    async def _start() -> None:
        diag._task = asyncio.get_running_loop().create_task(diag.run())
