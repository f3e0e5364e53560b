"""Master-key re-wrap from the admin console: the fast half of ``streamzy rotate-keys``
(every room key re-encrypted under the newest master key; no message moves), run as a
background task so a large database never holds a request open. One run at a time per
process; the re-wrap itself is safe to repeat (rows already under the newest key are
skipped, and each row is replaced only if unchanged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamzy.clock import Clock
from streamzy.services.key_inventory import KeyInventory, KeyStatus

log = logging.getLogger("streamzy.keys")
Audit = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class RewrapRun:
    """The last console re-wrap this process ran."""

    started_at: datetime
    finished_at: datetime | None
    master_key_id: str
    rewrapped: int = 0
    unwrappable: int = 0
    failed: bool = False
    totp_resealed: int = 0  # TOTP secrets moved under the newest master key


class KeyConsole:
    def __init__(self, inventory: KeyInventory, clock: Clock, audit: Audit,
                 newest_id: Callable[[], str]) -> None:
        self._inventory = inventory
        self._clock = clock
        self._audit = audit
        self._newest_id = newest_id
        self._task: asyncio.Task[RewrapRun] | None = None
        self.last: RewrapRun | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def status(self) -> KeyStatus:
        """What ``streamzy keys`` prints: master keys, what each wraps, stale rows."""
        return await self._inventory.status()

    def start_rewrap(self, actor_id: int, info: Any) -> asyncio.Task[RewrapRun]:
        """Start re-wrapping (or return the run already going); audited when it ends."""
        if self._task is not None and not self._task.done():
            return self._task
        started = RewrapRun(self._clock.now(), None, self._newest_id())
        self.last = started
        self._task = asyncio.create_task(self._rewrap(started, actor_id, info),
                                         name="console-rewrap")
        return self._task

    async def _rewrap(self, started: RewrapRun, actor_id: int, info: Any) -> RewrapRun:
        try:
            done = await self._inventory.rewrap()
            # Sealed second-factor secrets follow the master keys too, as in rotate-keys.
            resealed = await self._inventory.reseal_secrets()
        except Exception as exc:
            log.exception("console re-wrap failed")
            self.last = RewrapRun(started.started_at, self._clock.now(),
                                  started.master_key_id, failed=True)
            await self._audit("keys_rotated", info, actor_id, kind="master", via="console",
                              failed=type(exc).__name__)
            return self.last
        self.last = RewrapRun(started.started_at, self._clock.now(), started.master_key_id,
                              done.rewrapped, done.unwrappable + resealed.unwrappable,
                              totp_resealed=resealed.rewrapped)
        await self._audit("keys_rotated", info, actor_id, kind="master", via="console",
                          rewrapped=done.rewrapped, unusable=done.unwrappable,
                          totp_resealed=resealed.rewrapped,
                          totp_unusable=resealed.unwrappable,
                          master_key_id=started.master_key_id)
        return self.last

    async def stop(self) -> None:
        """On shutdown: cancel a running re-wrap (each batch commits by itself; the next run
        goes on with what is left)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
