"""Half-signed-in is signed out on the socket edge too: the challenge cookie (under its
own name or put where the session cookie goes) opens no socket, and neither does a session
that still owes its second-factor enrolment; after the code the same browser connects."""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from streamzy.storage import system_state
from tests.conftest import TEST_PASSWORD, LiveServer, csrf_of, login
from tests.realtime.helpers import ChatClient, connected
from tests.totp import code_at, enrol


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"rate_second_factor": "1000/m"}


async def refused(client: ChatClient) -> str:
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    await client.close()
    return str(client.connect_errors)


async def test_the_challenge_opens_no_socket_and_the_code_does(server: LiveServer) -> None:
    user = await server.make_user("alice")
    secret, _ = await enrol(server.services, user)
    async with server.client() as client:
        token = await csrf_of(client, "/login")
        step = await client.post("/login", data={"username": "alice", "password":
                                                 TEST_PASSWORD, "csrf_token": token})
        assert step.status_code == 302
        challenge = client.cookies["streamzy_challenge"]
        assert "not_authenticated" in await refused(ChatClient(server, cookie=challenge))
        assert "not_authenticated" in await refused(
            ChatClient(server, cookie=challenge, cookie_name="streamzy_challenge"))
        token = await csrf_of(client, "/login/second-factor")
        done = await client.post("/login/second-factor", data={
            "code": code_at(secret, server.clock), "csrf_token": token})
        assert done.status_code == 302
        session = client.cookies["streamzy_session"]
    chat = await connected(server, cookie=session)
    await chat.close()
    # The spent challenge still opens nothing.
    assert "not_authenticated" in await refused(ChatClient(server, cookie=challenge))


async def test_a_session_that_must_enrol_opens_no_socket(server: LiveServer) -> None:
    await server.make_user("bob")
    async with server.services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, "everyone",
                                 server.clock.now())
    async with server.client() as client:
        assert (await login(client, "bob")).status_code == 302
        cookie = client.cookies["streamzy_session"]
    assert "second_factor_required" in await refused(ChatClient(server, cookie=cookie))
