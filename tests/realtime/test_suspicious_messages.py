"""STREAMZY_SUSPICIOUS_MESSAGES: ordinary text always passes; markup a browser would parse
is refused ("block", the default) or delivered escaped ("flag"), and audited either way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from streamzy.clock import ManualClock
from streamzy.config import Settings
from tests.conftest import LiveServer, start_server
from tests.realtime.helpers import connected, make_room

PROSE = ["My favourite language? JavaScript: it runs everywhere.",
         'Use `<button onclick="save()">` in the template',
         "```html\n<img src=x onerror=alert(1)>\n```",
         "a < b and c > d"]
HOSTILE = '<button onclick="save()">'


async def test_ordinary_text_is_delivered_under_block(server: LiveServer) -> None:
    assert server.services.settings.suspicious_messages == "block"
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        for client in (alice, bob):
            assert (await client.call("join", {"room": room}))["ok"]
        for text in PROSE:
            ack = await alice.send(room, text)
            assert ack["ok"], (text, ack)
        await bob.wait_for(lambda: bob.texts(room) == PROSE)
        refused = await alice.send(room, HOSTILE)
        assert refused["ok"] is False and refused["code"] == "blocked"
        assert "`backticks`" in refused["message"]
    finally:
        await alice.close()
        await bob.close()
    rows = await server.audit_rows("message_blocked")
    assert len(rows) == 1 and "event_handler" in rows[0].detail
    assert "save()" not in rows[0].detail  # the rule, never the text
    assert not await server.audit_rows("message_flagged")


@pytest.fixture
async def flagging(settings_factory: Callable[..., Settings]) -> AsyncIterator[LiveServer]:
    live, shutdown = await start_server(settings_factory(suspicious_messages="flag"),
                                        ManualClock())
    try:
        yield live
    finally:
        await shutdown()


async def test_flag_delivers_and_audits(flagging: LiveServer) -> None:
    server = flagging
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    try:
        for client in (alice, bob):
            assert (await client.call("join", {"room": room}))["ok"]
        ack = await alice.send(room, HOSTILE)
        assert ack["ok"], ack
        await bob.wait_for(lambda: bob.texts(room) == [HOSTILE])  # the text, as sent
    finally:
        await alice.close()
        await bob.close()
    rows = await server.audit_rows("message_flagged")
    assert len(rows) == 1 and "event_handler" in rows[0].detail
    assert not await server.audit_rows("message_blocked")


def test_the_setting_takes_block_or_flag_only(settings_factory: Callable[..., Settings]
                                              ) -> None:
    assert settings_factory().suspicious_messages == "block"
    assert settings_factory(suspicious_messages="flag").suspicious_messages == "flag"
    with pytest.raises(ValueError, match="suspicious_messages"):
        settings_factory(suspicious_messages="off")


async def test_direction_controls_on_the_socket(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    try:
        assert (await alice.call("join", {"room": room}))["ok"]
        rtl = "\u05e9\u05dc\u05d5\u05dd \u2067world\u2069!"
        assert (await alice.send(room, rtl))["ok"]
        spoof = await alice.send(room, "access\u202e\u2066 level\u2069\u2066")
        assert spoof["ok"] is False and spoof["code"] == "invalid_text"
        assert "overrides" in spoof["message"]
    finally:
        await alice.close()
