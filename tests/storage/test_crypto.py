"""Envelope encryption: room keys wrapped by master keys; a wrong key stops the start."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.storage.crypto import KeyUnavailable, MasterKeys
from tests.conftest import start_server
from tests.realtime.helpers import connected, make_room


def test_master_keys_wrap_and_refuse_a_wrong_key() -> None:
    one, two = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    wrapped = MasterKeys([one]).wrap(b"room data key")
    assert MasterKeys([two, one]).unwrap(wrapped) == b"room data key"  # old key still listed
    rewrapped = MasterKeys([two, one]).rewrap(wrapped)
    assert MasterKeys([two]).unwrap(rewrapped) == b"room data key"
    with pytest.raises(KeyUnavailable):
        MasterKeys([two]).unwrap(wrapped)


async def _server_with_history(settings: Settings) -> int:
    live, stop = await start_server(settings, ManualClock())
    try:
        room = await make_room(live, "general")
        alice = await connected(live, "alice")
        await alice.call("join", {"room": room})
        assert (await alice.send(room, "sealed with the original key"))["ok"]
        await alice.close()
    finally:
        await stop()
    return room


async def test_wrong_master_key_stops_the_server_at_start(
        settings_factory: Callable[..., Settings]) -> None:
    original = Fernet.generate_key().decode()
    await _server_with_history(settings_factory(message_keys=[original]))
    wrong = settings_factory(message_keys=[Fernet.generate_key().decode()])
    with pytest.raises(Exception, match=r"1 room\(s\) have keys that no key"):
        await start_server(wrong, ManualClock())


async def test_rotated_master_keys_still_read_history(
        settings_factory: Callable[..., Settings]) -> None:
    original = Fernet.generate_key().decode()
    room = await _server_with_history(settings_factory(message_keys=[original]))
    rotated = settings_factory(message_keys=[Fernet.generate_key().decode(), original])
    live, stop = await start_server(rotated, ManualClock())
    try:
        alice = await connected(live, "alice2")
        await alice.call("join", {"room": room})
        history = await alice.call("history", {"room": room})
        assert history["messages"][0]["text"] == "sealed with the original key"
        await alice.close()
    finally:
        await stop()
