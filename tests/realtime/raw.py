"""A raw Engine.IO v4 / Socket.IO v5 websocket client, for packets no library would send."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.conftest import LiveServer


class RawSocket:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws
        self.next_id = 1

    @classmethod
    async def open(cls, server: LiveServer, cookie: str | None = None,
                   auth: dict[str, Any] | None = None) -> RawSocket:
        """Engine.IO open, then (with a cookie or auth) the Socket.IO connect."""
        headers = {"Cookie": f"streamzy_session={cookie}"} if cookie else {}
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(
            server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
            headers=headers, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        raw = cls(session, ws)
        assert (await raw.frame()).startswith("0{")
        if cookie or auth:
            await ws.send_str("40" + (json.dumps(auth) if auth else ""))
            answer = await raw.frame()
            assert answer.startswith("40{"), answer
        return raw

    async def frame(self, timeout: float = 5) -> str:
        """The next text frame that is not an Engine.IO ping (pings are answered)."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                return f"<{message.type.name}>"
            if message.data == "2":
                await self.ws.send_str("3")
                continue
            return str(message.data)

    async def closed_by_server(self, timeout: float = 5) -> bool:
        """True once the server closes: an Engine.IO close packet or the socket's end."""
        frame = await self.frame(timeout)
        return frame == "1" or frame.startswith("<")

    async def ack_for(self, body: str, timeout: float = 5) -> Any:
        """Send ``42<id><body>`` and return the data of its ack (43<id>[...])."""
        ack_id = self.next_id
        self.next_id += 1
        await self.ws.send_str(f"42{ack_id}{body}")
        return await self.ack(ack_id, timeout)

    async def ack(self, ack_id: int, timeout: float = 5) -> Any:
        while True:
            frame = await self.frame(timeout)
            if frame.startswith(f"43{ack_id}["):
                return json.loads(frame[len(f"43{ack_id}"):])[0]
            if frame.startswith("<"):
                raise AssertionError(f"connection ended: {frame}")

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
