"""The example bot in scripts/ runs against a live server and answers /roll and /echo."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room
from tests.realtime.test_bots import make_bot

ROOT = Path(__file__).resolve().parents[2]


async def test_example_bot_answers_in_its_room(server: LiveServer) -> None:
    room = await make_room(server, "dice")
    _, token = await make_bot(server, "roller", [room])
    bot = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "example_bot.py"),
        env={**os.environ, "STREAMZY_URL": server.url, "STREAMZY_BOT_TOKEN": token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    alice = await connected(server, "alice")
    try:
        assert bot.stdout is not None
        line = await asyncio.wait_for(bot.stdout.readline(), 15)
        assert b"joined #dice" in line
        await alice.call("join", {"room": room})
        await alice.send(room, "/roll 3d6")
        await alice.send(room, "/echo <b>as text</b>")

        def replies() -> list[str]:
            return [m["text"] for m in alice.messages if m["sender"]["bot"]]

        # Wait for the bot's own messages, whatever else the room shows.
        await alice.wait_for(lambda: len(replies()) >= 2, what="the bot's two replies")
        assert any(re.search(r"3d6: \d \+ \d \+ \d = \d+", text) for text in replies())
        assert "<b>as text</b>" in replies()

        # A planned restart: the notice (with the spread to reconnect within), then every
        # transport closes. The bot comes back by itself and catches up from its last seq.
        realtime = server.app.realtime
        await realtime.drain()
        realtime.admission.closing = False  # "restarted": connects are taken again
        await alice.disconnected.wait()
        alice = await connected(server, cookie=alice.cookie, rooms=[room])
        await alice.send(room, "/echo after the restart")
        await alice.wait_for(lambda: "after the restart" in replies(),
                             what="an answer after the bot reconnected")
    finally:
        await alice.close()
        bot.terminate()
        await bot.wait()
