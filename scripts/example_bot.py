#!/usr/bin/env python3
"""An example Streamzy bot: answers ``/roll NdM`` and ``/echo text`` in its rooms.

Usage:
    STREAMZY_URL=http://127.0.0.1:8000 STREAMZY_BOT_TOKEN=szb_... python scripts/example_bot.py

The token comes from Admin -> Bots (shown once). The bot joins every room it is allowed in,
speaks the same Socket.IO protocol as the browser, and retries a send with the same
client_msg_id so a reconnect can never post its answer twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
from typing import Any

import socketio

ROLL = re.compile(r"^/roll\s+(\d{1,2})d(\d{1,4})\s*$", re.IGNORECASE)
ECHO = re.compile(r"^/echo\s+(.+)$", re.IGNORECASE | re.DOTALL)


def answer(text: str) -> str | None:
    """What the bot says to ``text``, or None to stay quiet."""
    if match := ROLL.match(text):
        count, sides = int(match.group(1)), int(match.group(2))
        if not (1 <= count <= 20 and 2 <= sides <= 1000):
            return "I roll 1-20 dice with 2-1000 sides."
        rolls = [random.randint(1, sides) for _ in range(count)]
        return f"🎲 {count}d{sides}: {' + '.join(map(str, rolls))} = {sum(rolls)}"
    if match := ECHO.match(text):
        return match.group(1)[:1000]
    return None


RECONNECT = {"reconnection_delay": 1.0, "reconnection_delay_max": 10.0,
             "randomization_factor": 0.5}


class Bot:
    """Answers commands in every room it may use. It never misses one: after a reconnect,
    a server ``resync`` notice, or a live message whose ``seq`` skips, it catches up from
    the server's history (``join`` with ``since_seq``) before going on, and it handles each
    sequence number once."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        # Reconnects back off with jitter (python-socketio adds ±randomization_factor s), so
        # bots that lost the server together do not all come back in the same second.
        self.sio = socketio.AsyncClient(reconnection=True, **RECONNECT)
        self.last_seq: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.sio.on("connect", self.on_connect)
        self.sio.on("message", self.on_message)
        self.sio.on("resync", self.on_resync)
        self.sio.on("session_ended", self.on_ended)
        self.sio.on("restart", self.on_restart)
        self.stopping = False
        self.spread = RECONNECT["reconnection_delay"]  # seconds to come back within

    def _lock(self, room: int) -> asyncio.Lock:
        return self._locks.setdefault(room, asyncio.Lock())

    async def on_restart(self, data: Any = None) -> None:
        """The server restarts on purpose and asks its clients to spread their reconnects
        over ``spread_seconds``: ours lands at a random moment within it."""
        self.spread = min(60.0, max(1.0, float((data or {}).get("spread_seconds") or 1)))

    async def on_connect(self) -> None:
        rooms = await self.sio.call("rooms", {})
        for room in rooms.get("rooms", []):
            self.names[room["id"]] = room["name"]
            async with self._lock(room["id"]):
                await self.catch_up(room["id"])

    async def on_resync(self, data: Any = None) -> None:
        for room in list(self.names):
            async with self._lock(room):
                await self.catch_up(room)

    async def catch_up(self, room: int) -> None:
        """Join (again) and handle what was missed since the last seq handled here. The
        first join of a room starts from now: old commands are not answered."""
        since = self.last_seq.get(room)
        while True:
            joined = await self.sio.call("join", {"room": room, **(
                {"since_seq": since} if since is not None else {})})
            if not joined.get("ok"):
                return
            if since is None:
                self.last_seq[room] = joined["room"]["last_seq"]
                print(f"joined #{self.names.get(room, room)}", flush=True)
                return
            for message in joined.get("messages", []):
                await self.handle(message)
            if not joined.get("has_more"):
                return
            since = self.last_seq.get(room, since)

    async def on_ended(self, data: dict[str, Any]) -> None:
        print(f"session ended: {data.get('reason')}", flush=True)
        await self.stop()

    async def stop(self) -> None:
        self.stopping = True
        await self.sio.disconnect()

    async def on_message(self, message: dict[str, Any]) -> None:
        room = message["room"]
        async with self._lock(room):
            last = self.last_seq.get(room)
            if last is not None and message["seq"] > last + 1:
                await self.catch_up(room)  # a gap: fill it from history, in order
            await self.handle(message)

    async def handle(self, message: dict[str, Any]) -> None:
        room = message["room"]
        if message["seq"] <= self.last_seq.get(room, 0):
            return  # already handled (live and catch-up can both bring it)
        self.last_seq[room] = message["seq"]
        if message["sender"]["bot"]:
            return  # never answer bots (ourselves included)
        reply = answer(message["text"])
        if reply is None:
            return
        client_msg_id = f"reply-{message['id']}"  # a retry after a reconnect is not doubled
        for attempt in range(5):
            ack = await self.sio.call("message", {"room": room, "client_msg_id": client_msg_id,
                                                  "text": reply}, timeout=10)
            if ack.get("ok") or ack.get("code") not in ("rate_limited", "store_failed"):
                break
            await asyncio.sleep(float(ack.get("retry_after", 1 + attempt)))

    async def run(self) -> None:
        """Connect, and connect again whenever the server hung up (python-socketio retries a
        lost transport by itself, but not a server that closed the connection on purpose,
        as a restarting one does), each time after a random delay so that a restart does
        not bring every bot back in the same second."""
        delay = 0.0
        while not self.stopping:
            await asyncio.sleep(delay)
            try:
                await self.sio.connect(self.url, auth={"token": self.token},
                                       transports=["websocket"], wait_timeout=10)
            except socketio.exceptions.ConnectionError:
                delay = min(RECONNECT["reconnection_delay_max"], max(1.0, delay * 2))
                delay *= random.uniform(1 - RECONNECT["randomization_factor"],
                                        1 + RECONNECT["randomization_factor"])
                continue
            await self.sio.wait()
            delay = random.uniform(0, self.spread)  # jitter, not a secret
            self.spread = RECONNECT["reconnection_delay"]


async def main() -> int:
    url = os.environ.get("STREAMZY_URL", "http://127.0.0.1:8000")
    token = os.environ.get("STREAMZY_BOT_TOKEN", "")
    if not token:
        print("set STREAMZY_BOT_TOKEN (Admin -> Bots shows it once)", file=sys.stderr)
        return 2
    bot = Bot(url, token)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.stop()))
    await bot.run()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
