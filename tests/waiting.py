"""Bounded waits for tests: every loop here ends by a deadline, none of them measures time.

A test that waits for something uses one of these instead of its own loop: a busy machine
only makes the wait longer (up to the deadline), never the answer different.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

# Long enough that a loaded CI machine never hits it, short enough that a real bug fails fast.
DEADLINE = 15.0
POLL = 0.02


async def _value[T](read: Callable[[], T | Awaitable[T]]) -> T:
    value = read()
    if inspect.isawaitable(value):
        return await value
    return value


async def wait_until(predicate: Callable[[], Any], *, timeout: float = DEADLINE,
                     what: str = "the condition", interval: float = POLL) -> None:
    """Poll ``predicate`` (plain or async) until it is truthy; fail after ``timeout`` s."""
    try:
        async with asyncio.timeout(timeout):
            while not await _value(predicate):
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def assert_eventually[T](read: Callable[[], T | Awaitable[T]], expected: T, *,
                               timeout: float = DEADLINE) -> None:
    """``assert read() == expected`` once it settles (Playwright's ``expect.poll``).

    Reads until the value equals ``expected``; on timeout asserts the last value, so the
    failure shows pytest's usual diff.
    """
    last: Any = None
    try:
        async with asyncio.timeout(timeout):
            while (last := await _value(read)) != expected:
                await asyncio.sleep(POLL)
    except TimeoutError:
        assert last == expected, f"still different after {timeout} s"


async def wait_until_healthy(url: str, *, alive: Callable[[], None] | None = None,
                             path: str = "/healthz", timeout: float = 30.0,
                             **client_options: Any) -> httpx.Response:
    """Poll ``url + path`` until it answers 200; returns that response.

    ``alive`` is called between attempts and should raise when the server can no longer
    come up (its process exited, its task failed), so a crash fails at once with its cause.
    """
    last: str = "no answer"
    async with httpx.AsyncClient(timeout=5, **client_options) as probe:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if alive is not None:
                        alive()
                    try:
                        response = await probe.get(url + path)
                        if response.status_code == 200:
                            return response
                        last = f"HTTP {response.status_code}"
                    except httpx.TransportError as exc:
                        last = type(exc).__name__
                    await asyncio.sleep(POLL)
        except TimeoutError:
            raise AssertionError(f"{url}{path} not healthy after {timeout} s ({last})") from None


def process_alive(proc: Any, name: str = "the server") -> Callable[[], None]:
    """An ``alive`` check for wait_until_healthy: fails once ``proc`` (a Popen) has exited."""

    def check() -> None:
        if proc.poll() is not None:
            stderr = b""
            if getattr(proc, "stderr", None) is not None:
                stderr = proc.stderr.read() or b""
            raise AssertionError(f"{name} exited with {proc.returncode} while starting: "
                                 f"{stderr.decode(errors='replace')[-2000:]}")

    return check


def task_alive(task: asyncio.Task[Any]) -> Callable[[], None]:
    """An ``alive`` check for an in-process server task: re-raises why it stopped."""

    def check() -> None:
        if task.done():
            task.result()
            raise AssertionError("the server stopped while starting")

    return check
