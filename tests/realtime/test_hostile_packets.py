"""Packets an attacker or a broken client sends: each gets an error ack or is ignored, the
connection goes on, and nothing is logged as a traceback."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import LiveServer
from tests.realtime.helpers import signed_in_cookie
from tests.realtime.raw import RawSocket


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


def assert_no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    traced = [r for r in caplog.records if r.exc_info]
    assert not traced, [r.getMessage() for r in traced]


async def test_deeply_nested_json_gets_an_error_ack(server: LiveServer,
                                                     no_tracebacks: pytest.LogCaptureFixture
                                                     ) -> None:
    raw = await RawSocket.open(server, await signed_in_cookie(server, "alice"))
    depth = 14_000  # ~28 KB: inside the transport limit, far past the recursion limit
    ack = await raw.ack_for('["message",' + "[" * depth + "]" * depth + "]")
    assert ack["code"] == "invalid_payload"
    assert (await raw.ack_for('["rooms",{}]'))["ok"]  # the connection goes on
    await raw.close()
    assert_no_tracebacks(no_tracebacks)
    assert await server.audit_rows("socket_bad_packet")


async def test_binary_placeholders_do_not_wedge_the_connection(
        server: LiveServer, no_tracebacks: pytest.LogCaptureFixture) -> None:
    raw = await RawSocket.open(server, await signed_in_cookie(server, "alice"))
    await raw.ws.send_str('451-7["message",{"_placeholder":true,"num":0}]')
    assert (await raw.ack(7))["code"] == "binary_not_supported"
    await raw.ws.send_bytes(b"\x00\x01 never an attachment")
    assert (await raw.ack_for('["rooms",{}]'))["ok"]
    await raw.close()
    assert_no_tracebacks(no_tracebacks)


@pytest.mark.parametrize("frame", [
    '42{"not":"a list"}', "42[]", "42[17]", '42["rooms"', "4x garbage", '44["connect_error"]',
    '46["late ack"]', "43[", '42/nowhere,["rooms",{}]',
])
async def test_malformed_frames_are_ignored_or_refused(
        server: LiveServer, no_tracebacks: pytest.LogCaptureFixture, frame: str) -> None:
    raw = await RawSocket.open(server, await signed_in_cookie(server, "alice"))
    await raw.ws.send_str(frame)
    assert (await raw.ack_for('["rooms",{}]'))["ok"]
    await raw.close()
    assert_no_tracebacks(no_tracebacks)


async def test_malformed_with_an_ack_id_is_answered(server: LiveServer) -> None:
    raw = await RawSocket.open(server, await signed_in_cookie(server, "alice"))
    await raw.ws.send_str('425{"not":"a list"}')
    assert (await raw.ack(5))["code"] == "invalid_payload"
    await raw.ws.send_str('426["rooms",{"a":')
    assert (await raw.ack(6))["code"] == "invalid_payload"
    await raw.close()
