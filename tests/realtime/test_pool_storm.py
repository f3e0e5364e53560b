"""More sockets want the database at once than the pool has connections (a join storm):
each waits at most the database timeout, then gets a clear "unavailable", never a hang or
a traceback, and everything works again once connections come free."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
import socketio
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, connected, make_room, signed_in_cookie
from tests.waiting import wait_until


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"database_timeout_seconds": 1.0}


async def test_an_exhausted_pool_answers_unavailable_and_recovers(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    room = await make_room(server, "general")
    waiting = await connected(server, "early")
    cookie = await signed_in_cookie(server, "late")
    engine = server.services.db.engine
    held = []  # the whole pool, overflow included (the server may hold some already)
    with contextlib.suppress(PoolTimeout):
        while len(held) < 40:
            held.append(await engine.connect())
    assert len(held) <= 30
    try:
        ack = await waiting.call("join", {"room": room})  # a first join stores membership
        assert ack["ok"] is False and ack["code"] == "unavailable"
        client = ChatClient(server, cookie=cookie)
        if server.services.db.url.startswith("sqlite"):
            await client.connect()  # SQLite: the session read has its own connections
            await client.close()
        else:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect()
            await wait_until(lambda: client.connect_errors, what="the refusal")
            assert "unavailable" in str(client.connect_errors)
    finally:
        for connection in held:
            await connection.close()
    assert (await waiting.call("join", {"room": room}))["ok"]
    late = await connected(server, cookie=cookie, rooms=[room])
    await late.close()
    await waiting.close()
    assert not [r.getMessage() for r in caplog.records if r.exc_info]
