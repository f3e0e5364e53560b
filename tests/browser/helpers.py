"""Small helpers the browser journeys share.

Every check of page state waits: Playwright's ``expect`` for what it can express, and
``assert_eventually`` (bounded polling, like ``expect.poll``) for the rest. A page updates
itself after the event a test waited for (a message shows its text before its ack sets
``data-seq``), so a plain ``assert`` on a value read once races the page.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from tests.browser.conftest import expect
from tests.waiting import assert_eventually

MESSAGE_TEXTS = "#messages .message .text"


async def seqs(page: Any) -> list[int | None]:
    """The sequence number of every message on the page, in page order (None: not yet acked)."""
    values = await page.locator("#messages .message").evaluate_all(
        "items => items.map(i => i.dataset.seq === undefined ? null : Number(i.dataset.seq))")
    return list(values)


async def expect_seqs(page: Any, expected: list[int]) -> None:
    """Wait until the page shows exactly these messages, each acked, in this order."""
    await assert_eventually(lambda: seqs(page), expected)


async def expect_clipboard(page: Any, expected: str) -> None:
    """Wait until the clipboard holds ``expected`` (copy buttons write it asynchronously)."""
    await assert_eventually(lambda: page.evaluate("navigator.clipboard.readText()"), expected)


async def open_room(page: Any, name: str) -> None:
    await page.goto(f"/rooms/{name}")
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")


class Frames:
    """Socket.IO frames a page sends and receives, awaited without polling."""

    def __init__(self, page: Any) -> None:
        self.sent: list[str] = []
        self.received: list[str] = []
        self._changed = asyncio.Event()
        page.on("websocket", self._attach)

    def _attach(self, ws: Any) -> None:
        ws.on("framesent", lambda payload: self._add(self.sent, payload))
        ws.on("framereceived", lambda payload: self._add(self.received, payload))

    def _add(self, into: list[str], payload: Any) -> None:
        into.append(payload if isinstance(payload, str) else payload.decode())
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def acked(self, event: str) -> bool:
        ids = [m.group(1) for m in (re.match(rf'^42(\d+)\["{event}"', f) for f in self.sent)
               if m]
        return any(f.startswith(f"43{i}[") for i in ids for f in self.received)
