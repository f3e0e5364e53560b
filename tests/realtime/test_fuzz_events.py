"""Property-based fuzzing of every socket event against the real server.

For arbitrary JSON-like payloads (and arbitrary event names) every event is answered with
an ack that is a dict: ``ok: true``, or ``ok: false`` with a stable code from a known set;
never ``internal_error``, never a traceback in the log, and the connection survives.

Hypothesis runs the examples synchronously, so the server and its client live on an event
loop in a background thread, started once for the module; each example is one ack.
Bounded and derandomized, so CI runs the same examples every time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamzy.clock import ManualClock
from streamzy.realtime.handlers import ChatHandlers
from tests.conftest import BACKEND, _pg_execute, _pg_url, make_settings, start_server
from tests.realtime.helpers import ChatClient, make_room, signed_in_cookie

EVENTS = ["rooms", "join", "leave", "message", "history", "typing", "read"]
# Every code an ack may carry. A new one is a decision: add it here on purpose.
KNOWN_CODES = frozenset({
    "invalid_payload", "invalid_input", "unknown_event", "reserved_event",
    "binary_not_supported", "not_authenticated", "session_ended", "rate_limited",
    "unknown_room", "not_a_member", "not_joined", "empty", "too_long", "invalid_text",
    "blocked", "conflict",
})
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INT64 = 2**63 - 1


class LoopThread:
    """An event loop in a daemon thread: the server and the client run there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Problems(logging.Handler):
    """Every warning or worse logged anywhere while the module runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        """Tracebacks and errors logged since the last call (one example's worth)."""
        found = [f"{r.name}: {r.getMessage()}" for r in self.records
                 if r.exc_info or r.levelno >= logging.ERROR]
        self.records.clear()
        return found


class Fuzzing:
    def __init__(self, runner: LoopThread, client: ChatClient, room: int,
                 problems: Problems) -> None:
        self.runner = runner
        self.client = client
        self.room = room
        self.problems = problems

    def call(self, event: str, payload: Any) -> Any:
        return self.runner.run(self.client.call(event, payload))

    def check(self, event: str, payload: Any) -> None:
        ack = self.call(event, payload)
        assert isinstance(ack, dict), (event, payload, ack)
        if ack.get("ok") is not True:
            assert ack.get("ok") is False, ack
            assert ack.get("code") in KNOWN_CODES, (event, payload, ack)
            assert isinstance(ack.get("message"), str) and ack["message"], ack
        assert self.client.sio.connected, (event, payload)
        assert self.problems.tracebacks() == [], (event, payload)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, template_db: Path,
             pg_template: Any) -> Iterator[str]:
    if BACKEND != "postgres":
        path = tmp_path_factory.mktemp("fuzz") / "streamzy.db"
        shutil.copy(template_db, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    base, template = pg_template
    name = f"streamzy_fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(base, f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield _pg_url(base, name)
    asyncio.run(_pg_execute(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Fuzzing]:
    # No budget runs out while fuzzing (the manual clock never refills one): rate limits
    # have their own tests; here every example must reach its handler.
    config = make_settings(tmp_path_factory.mktemp("fuzz-logs"), database,
                           rate_socket_events="1000000/m", rate_messages="1000000/m")
    runner = LoopThread()
    problems = Problems()
    root = logging.getLogger()
    root.addHandler(problems)

    async def start() -> tuple[Any, Any, ChatClient, int]:
        server, shutdown = await start_server(config, ManualClock())
        room = await make_room(server, "general")
        await make_room(server, "staff", private=True)
        client = ChatClient(server, cookie=await signed_in_cookie(server, "fuzzer"))
        await client.connect()
        assert (await client.call("join", {"room": room}))["ok"]
        return server, shutdown, client, room

    _, shutdown, client, room = runner.run(start())
    try:
        yield Fuzzing(runner, client, room, problems)
    finally:
        runner.run(client.close())
        runner.run(shutdown())
        runner.stop()
        root.removeHandler(problems)


# -- payloads -------------------------------------------------------------------------------
# Text that JSON can carry, lone surrogates included (the client escapes them as \udxxx).
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20),
    st.sampled_from(["", " ", "general", "staff", "\u202e", "\u2067x", "<script>x</script>",
                     "javascript:x", "\x00", "\ud800", "🙂" * 3, "a" * 65, "x" * 4001]),
)
INTS = st.one_of(st.integers(-3, 5), st.integers(-(2**80), 2**80),
                 st.sampled_from([0, 1, INT64, INT64 + 1, -INT64 - 1, 2**64, 10**15]))
FLOATS = st.one_of(st.floats(), st.sampled_from([math.inf, -math.inf, 1.0, 0.5, 1e300]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
FIELDS = ["room", "text", "client_msg_id", "seq", "since_seq", "before_seq", "limit"]


def event_payload(names: list[str]) -> st.SearchStrategy[Any]:
    """Mostly objects with the event's own keys (to reach deep into the handler), with
    arbitrary or near-valid values, some extra keys, and sometimes anything at all."""
    value = st.one_of(JSON, INTS, TEXT)
    near = {"room": st.one_of(st.just(1), st.just("general"), st.just(2), value),
            "client_msg_id": st.one_of(st.uuids().map(str), value),
            "text": st.one_of(TEXT, value)}
    shaped = st.fixed_dictionaries(
        {}, optional={name: near.get(name, value) for name in names})
    extra = st.builds(lambda base, more: {**base, **more}, shaped,
                      st.dictionaries(st.sampled_from([*FIELDS, "ok", "__proto__"]), value,
                                      max_size=2))
    return st.one_of(shaped, shaped, extra, JSON)


KEYS = {"rooms": [], "join": ["room", "since_seq"], "leave": ["room"],
        "message": ["room", "client_msg_id", "text"],
        "history": ["room", "before_seq", "limit"], "typing": ["room"],
        "read": ["room", "seq"]}


def test_the_fuzzed_events_are_every_event() -> None:
    names = set(ChatHandlers.table(object.__new__(ChatHandlers)))  # type: ignore[arg-type]
    assert names == set(EVENTS) == set(KEYS)


@pytest.mark.parametrize("event", EVENTS)
@FUZZ
@given(data=st.data())
def test_every_payload_gets_a_known_answer(fuzzing: Fuzzing, event: str,
                                           data: st.DataObject) -> None:
    payload = data.draw(event_payload(KEYS[event]), label="payload")
    fuzzing.check(event, payload)
    if event == "leave":  # stay in the room, so the other events go on reaching it
        assert fuzzing.call("join", {"room": fuzzing.room})["ok"]


@FUZZ
@given(name=st.one_of(TEXT, st.sampled_from(["connect", "disconnect", "connect_error",
                                              "session_ended", "presence", "\x00malformed",
                                              "\x00binary", "MESSAGE", "message "])),
       payload=st.one_of(st.none(), JSON))
def test_unknown_event_names_get_a_known_answer(fuzzing: Fuzzing, name: str,
                                                payload: Any) -> None:
    if name in EVENTS:
        name = name + "?"
    fuzzing.check(name, payload)
