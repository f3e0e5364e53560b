"""Property-based fuzzing of the moderation events against the real server (like
test_fuzz_events.py, whose machinery this reuses): every payload gets an ack that is a
dict with ``ok: true`` or a known code, never ``internal_error`` or a traceback.

The fuzzer is a server admin, so payloads that pass validation reach the use cases and
act on real people (members ranked below it, the owner who is an admin too, itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamzy.clock import ManualClock
from streamzy.guards.context import SYSTEM
from streamzy.realtime.moderation_handlers import ModerationHandlers
from streamzy.services.message_writer import Sender
from tests.conftest import make_settings, start_server
from tests.realtime.helpers import ChatClient, make_room, signed_in_cookie
from tests.realtime.test_fuzz_events import (  # noqa: F401 - database is a fixture
    FUZZ,
    INTS,
    TEXT,
    Fuzzing,
    LoopThread,
    Problems,
    database,
    event_payload,
)

KEYS = {"report": ["room", "id", "reason"], "permissions": ["room"],
        "mute": ["room", "user", "minutes", "reason"], "unmute": ["room", "user"],
        "kick": ["room", "user", "reason"], "ban": ["room", "user", "minutes", "reason"],
        "unban": ["room", "user"], "slow_mode": ["room", "seconds"],
        "set_role": ["room", "user", "role"], "invite": ["room", "username"],
        "archive": ["room", "archived"]}
MEMBERS = ("amy", "ben", "cat")
IDS: dict[str, int] = {}
KNOWN_CODES = frozenset({
    "invalid_payload", "invalid_input", "rate_limited", "unknown_room", "not_a_member",
    "not_allowed", "outranked", "not_yourself", "no_user", "target_not_member", "not_banned",
    "unknown_message", "banned", "invalid_duration", "direct_conversation", "bots_by_admins",
})


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory, database: str  # noqa: F811
            ) -> Iterator[Fuzzing]:
    config = make_settings(tmp_path_factory.mktemp("fuzz-mod-logs"), database,
                           rate_socket_events="1000000/m", rate_messages="1000000/m")
    runner = LoopThread()
    problems = Problems()
    root = logging.getLogger()
    root.addHandler(problems)

    async def start() -> tuple[Any, ChatClient, int]:
        server, shutdown = await start_server(config, ManualClock())
        room = await make_room(server, "general")  # owned by "roomadmin", an admin
        await make_room(server, "staff", private=True)
        client = ChatClient(server, cookie=await signed_in_cookie(server, "fuzzer", admin=True))
        info = await server.services.rooms.resolve(room)
        for name in MEMBERS:
            member = await server.make_user(name)
            IDS[name] = member.id
            await server.services.rooms.join(member.id, info)
        amy = await server.services.accounts.by_username("amy")
        await server.services.posting.send(Sender(amy.id, "amy", "Amy"), info,  # type: ignore[union-attr]
                                           "seed-1",
                                           "a message to report", SYSTEM)
        await client.connect()
        assert (await client.call("join", {"room": room}))["ok"]
        return shutdown, client, room

    shutdown, client, room = runner.run(start())
    try:
        yield Fuzzing(runner, client, room, problems)
    finally:
        runner.run(client.close())
        runner.run(shutdown())
        runner.stop()
        root.removeHandler(problems)


def test_the_fuzzed_events_are_every_moderation_event() -> None:
    names = set(ModerationHandlers.table(object.__new__(ModerationHandlers)))  # type: ignore[arg-type]
    assert names == set(KEYS)


NEAR = {"user": st.one_of(st.integers(1, 6), INTS), "id": st.one_of(st.integers(1, 3), INTS),
        "minutes": st.one_of(st.integers(0, 100), INTS, st.none()),
        "seconds": st.one_of(st.integers(-1, 100), INTS),
        "role": st.one_of(st.sampled_from(["owner", "moderator", "member", "admin"]), TEXT),
        "archived": st.one_of(st.booleans(), st.integers(0, 1), TEXT),
        "username": st.one_of(st.sampled_from([*MEMBERS, "fuzzer", "roomadmin"]), TEXT),
        "reason": TEXT}


@pytest.mark.slow
@pytest.mark.parametrize("event", sorted(KEYS))
@FUZZ
@given(data=st.data())
def test_every_moderation_payload_gets_a_known_answer(fuzzing: Fuzzing, event: str,
                                                      data: st.DataObject) -> None:
    near = st.fixed_dictionaries({}, optional={
        name: NEAR.get(name, st.one_of(st.just(fuzzing.room), st.just("general"),
                                       st.just("staff"), INTS, TEXT))
        for name in KEYS[event]})
    payload = data.draw(st.one_of(near, near, event_payload(KEYS[event])), label="payload")
    ack = fuzzing.call(event, payload)
    assert isinstance(ack, dict), (event, payload, ack)
    if ack.get("ok") is not True:
        assert ack.get("ok") is False, ack
        assert ack.get("code") in KNOWN_CODES, (event, payload, ack)
        assert isinstance(ack.get("message"), str) and ack["message"], ack
    assert fuzzing.client.sio.connected, (event, payload)
    assert fuzzing.problems.tracebacks() == [], (event, payload)
    if event in ("kick", "ban"):  # bring the members back for the next examples
        for name in MEMBERS:
            fuzzing.call("unban", {"room": fuzzing.room, "user": IDS[name]})
            fuzzing.call("invite", {"room": fuzzing.room, "username": name})
