"""The unauthenticated stage: a deadline to authenticate, a cap per address, a budget of
refused connects per address, and a cap of live sockets per account."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import socketio

from tests.conftest import LiveServer
from tests.realtime.helpers import ChatClient, signed_in_cookie
from tests.realtime.raw import RawSocket


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"socket_unauthenticated_per_address": 3, "socket_refusals_per_minute": 3,
            "sockets_per_user": 2, "socket_auth_deadline_seconds": 10}


async def refusal(client: ChatClient) -> str:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    return str(client.connect_errors)


async def test_a_connection_that_never_authenticates_is_closed(server: LiveServer) -> None:
    admission = server.app.realtime.admission
    idle = await RawSocket.open(server)  # Engine.IO only, no Socket.IO connect
    signed = await RawSocket.open(server, await signed_in_cookie(server, "alice"))
    assert await admission.expire_once() == 0  # nothing is late yet
    server.clock.advance(10)
    assert await admission.expire_once() == 1
    assert await idle.closed_by_server()
    assert (await signed.ack_for('["rooms",{}]'))["ok"]  # authenticated: left alone
    await idle.close()
    await signed.close()


async def test_unauthenticated_connections_are_capped_per_address(server: LiveServer) -> None:
    held = [await RawSocket.open(server) for _ in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await RawSocket.open(server)
    rows = await server.audit_rows("socket_refused")
    assert [r.client_ip for r in rows] == ["127.0.0.1"]
    assert "too_many_unauthenticated" in rows[0].detail
    await held[0].close()  # a closed one frees its place
    admission = server.app.realtime.admission
    await ChatClient(server).wait_for(lambda: admission.sizes()["pending"] == 2)
    replacement = await RawSocket.open(server)
    for raw in [*held[1:], replacement]:
        await raw.close()


async def test_an_address_whose_connects_keep_failing_is_refused_without_lookups(
        server: LiveServer) -> None:
    good_cookie = await signed_in_cookie(server, "alice")
    for _ in range(3):
        assert "not_authenticated" in await refusal(ChatClient(server, cookie="forged"))
    assert "rate_limited" in await refusal(ChatClient(server, cookie=good_cookie))
    reasons = [r.detail for r in await server.audit_rows("socket_refused")]
    assert len(reasons) == 2  # one row per reason and window, not one per attempt
    server.clock.advance(61)
    client = ChatClient(server, cookie=good_cookie)
    await client.connect()
    await client.close()


async def test_live_sockets_per_account_are_capped(server: LiveServer) -> None:
    cookie = await signed_in_cookie(server, "alice")
    first, second = ChatClient(server, cookie=cookie), ChatClient(server, cookie=cookie)
    await first.connect()
    await second.connect()
    assert "too_many_connections" in await refusal(ChatClient(server, cookie=cookie))
    other = ChatClient(server, cookie=await signed_in_cookie(server, "bob"))
    await other.connect()  # another account is not affected
    await first.close()
    await first.disconnected.wait()
    third = ChatClient(server, cookie=cookie)
    await third.wait_for(lambda: len(server.app.realtime.registry.sids("user:1")) < 2)
    await third.connect()
    for client in (second, other, third):
        await client.close()


async def test_refusal_floods_are_on_the_record_as_counts(server: LiveServer) -> None:
    for _ in range(10):
        await refusal(ChatClient(server, cookie="forged"))
    first = [r.detail for r in await server.audit_rows("socket_refused")]
    assert len(first) == 2  # not_authenticated, then rate_limited once over the budget
    await server.services.audit_log.flush_repeats()
    assert len(await server.audit_rows("socket_refused")) == 2  # windows still open
    server.clock.advance(61)
    await server.services.audit_log.flush_repeats()
    rows = [json.loads(r.detail) for r in await server.audit_rows("socket_refused")]
    counts = {r["reason"]: r.get("repeated") for r in rows if "repeated" in r}
    assert counts == {"not_authenticated": 2, "rate_limited": 6}
    assert all(r["window_seconds"] == 60 for r in rows if "repeated" in r)
