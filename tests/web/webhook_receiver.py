"""A webhook receiver on 127.0.0.1 for the alert tests: records each request and answers
from a script (a list of status codes, or "hang" to never answer)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamzy.services.alert_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.conftest import free_port

SECRET = "webhook-secret-for-tests-0123456789"


@dataclass
class Received:
    body: bytes
    timestamp: str
    signature: str

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    def signed_by(self, secret: str) -> bool:
        return verify(secret.encode(), self.timestamp, self.body, self.signature)


@dataclass
class Receiver:
    url: str = ""
    script: list[Any] = field(default_factory=list)  # answers in order, then 200
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(await request.read(),
                                      request.headers.get(TIMESTAMP_HEADER, ""),
                                      request.headers.get(SIGNATURE_HEADER, "")))
        answer = self.script.pop(0) if self.script else 200
        if answer == "hang":
            await self.release.wait()
            answer = 200
        return web.Response(status=int(answer), text="ok")

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.signed_by(SECRET)]


async def start_receiver() -> tuple[Receiver, web.AppRunner]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    return receiver, runner
