"""A circuit breaker for calls to a shared service (Redis): fail fast while it is down.

Every call has a timeout. A failure (error or timeout) opens the circuit: for ``cooldown``
seconds calls are refused at once (CircuitOpen) instead of each waiting out a timeout, so a
hung Redis costs one timeout, not one per rate-limit check. After the cooldown one call is
let through as a probe; its success closes the circuit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("streamzy.circuit")


class CircuitOpen(ConnectionError):
    """The service failed recently; the call was not attempted."""


class Circuit:
    def __init__(self, name: str, *, timeout: float, cooldown: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.timeout = timeout
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._open_until = 0.0  # 0: closed
        self._probing = False
        self.failures = 0  # calls that failed or timed out, since start (for /readyz)

    @property
    def closed(self) -> bool:
        return self._open_until == 0.0

    async def call[T](self, fn: Callable[[], Awaitable[T]]) -> T:
        now = self._monotonic()
        probe = False
        if self._open_until:
            if now < self._open_until or self._probing:
                raise CircuitOpen(f"{self.name} is unavailable")
            probe = self._probing = True
        try:
            async with asyncio.timeout(self.timeout):
                result = await fn()
        except Exception as exc:
            self.failures += 1
            if not self._open_until:
                log.warning("%s unavailable (%s): failing fast for %.0f s at a time",
                            self.name, type(exc).__name__, self.cooldown)
            self._open_until = self._monotonic() + self.cooldown
            raise
        finally:
            if probe:
                self._probing = False
        if self._open_until:
            log.warning("%s is back", self.name)
            self._open_until = 0.0
        return result
