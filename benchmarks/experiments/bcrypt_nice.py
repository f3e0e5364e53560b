"""Experiment: password hashing that cannot starve the event loop.

PasswordHasher runs bcrypt (cost 12: ~0.3 s of CPU per check) with ``asyncio.to_thread``:
the loop itself never blocks, but on a server with one core (or as many logins as cores)
the hashing threads take the CPU from the loop thread, and every socket waits. Here the
hashes run on two dedicated threads that lower their own scheduling priority to nice 19
(Linux: per thread), so the kernel gives the loop the core whenever it has work and the
hashes the rest. Logins get slower while chat is busy; chat does not.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streamzy.services import passwords


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: keep the default
        pass


EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bcrypt",
                              initializer=_lower_priority)


class _AsyncioWithHashPool:
    """The asyncio module, except that to_thread runs on EXECUTOR."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(EXECUTOR, functools.partial(func, *args, **kwargs))


def install() -> None:
    passwords.asyncio = _AsyncioWithHashPool()  # type: ignore[assignment]
