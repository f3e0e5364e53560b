"""The scenarios, one module each, in the order the runner runs them and lists them in
``--help``: the one registry run.py (and the smoke test) read, so a new scenario is one
module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness.context import Context
from benchmarks.scenarios import (
    fanout,
    flood,
    history,
    idle_sockets,
    large_room,
    login_storm,
    small_rooms,
    two_processes,
    waves,
)


@dataclass(frozen=True)
class Scenario:
    name: str  # the command-line flag, --NAME, its argparse dest and the key of the --json results
    help: str
    run: Callable[[Context], None]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("fanout", "1. fan-out knee, 200 clients in one room", fanout.run),
    Scenario("rooms", "2. many small rooms, 1,000 clients in 100 rooms", small_rooms.run),
    Scenario("logins", "3. login storm", login_storm.run),
    Scenario("idle", "4. 10,000 idle sockets", idle_sockets.run),
    Scenario("history", "5. history page at 1,000,000 messages", history.run),
    Scenario("redis", "6. two processes over Redis (needs 4 cores)", two_processes.run),
    Scenario("flood", "7. one client flooding, with the real limits", flood.run),
    Scenario("waves", "8. RSS after waves of 1,000 sockets connecting and leaving",
             waves.run),
    Scenario("large-room", "9. one room of thousands: join storms, 10,000 idle members, "
             "delivery to 2,000", large_room.run),
)}
