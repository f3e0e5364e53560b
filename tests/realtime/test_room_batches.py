"""Presence and typing coalescing, driven with explicit times (no sleeps, no server)."""

from __future__ import annotations

from typing import Any

from streamzy.realtime.room_batches import RoomBatches
from streamzy.realtime.roster import Roster


def person(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "username": f"u{user_id}", "display_name": f"U {user_id}",
            "bot": False}


def test_a_quiet_room_sends_at_once_then_at_most_once_per_interval() -> None:
    batches = RoomBatches(interval=1.0)
    assert batches.presence(7, 1, person(1), True, now=10.0)  # nothing was waiting
    assert batches.next_due() == 10.0
    [first] = batches.take_due(10.0)
    assert [p["id"] for p in first.joined] == [1] and first.left == []
    for k in range(2, 50):  # a storm: 48 joins within the next interval
        batches.presence(7, k, person(k), True, now=10.0 + k / 100)
    assert batches.take_due(10.9) == []  # not before the interval since the last batch
    assert batches.next_due() == 11.0
    [second] = batches.take_due(11.0)
    assert [p["id"] for p in second.joined] == list(range(2, 50))
    assert batches.take_due(20.0) == [] and batches.size() == 0  # nothing remembered


def test_a_batch_carries_only_net_changes() -> None:
    batches = RoomBatches(interval=1.0)
    batches.presence(1, 5, person(5), True, now=0.0)
    batches.take_due(0.0)
    batches.presence(1, 6, person(6), True, now=0.1)    # came and went: not mentioned
    batches.presence(1, 6, person(6), False, now=0.2)
    batches.presence(1, 5, person(5), False, now=0.3)   # went and came back: not mentioned
    batches.presence(1, 5, person(5), True, now=0.4)
    batches.presence(1, 8, person(8), False, now=0.5)   # went: named by id only
    [batch] = batches.take_due(1.0)
    assert batch.joined == [] and batch.left == [8]
    batches.presence(1, 9, person(9), True, now=1.5)
    batches.presence(1, 9, person(9), False, now=1.6)
    assert batches.take_due(2.0) == []  # nothing left to say: no batch at all


def test_rooms_are_coalesced_independently() -> None:
    batches = RoomBatches(interval=1.0)
    batches.presence(1, 1, person(1), True, now=0.0)
    batches.take_due(0.0)
    batches.presence(1, 2, person(2), True, now=0.2)
    batches.presence(2, 3, person(3), True, now=0.3)  # room 2 was quiet: goes at once
    assert [b.room_id for b in batches.take_due(0.3)] == [2]
    assert [b.room_id for b in batches.take_due(1.0)] == [1]


def test_typing_is_coalesced_and_skips_who_left() -> None:
    batches = RoomBatches(interval=1.0)
    batches.typing(4, person(1), now=0.0)
    [first] = batches.take_due(0.0)
    assert [p["id"] for p in first.typing] == [1]
    for _ in range(10):  # one typist repeating is one entry
        batches.typing(4, person(1), now=0.5)
    batches.typing(4, person(2), now=0.6)
    batches.typing(4, person(3), now=0.7)
    batches.presence(4, 3, person(3), False, now=0.8)  # typed, then left
    [second] = batches.take_due(1.0)
    assert [p["id"] for p in second.typing] == [1, 2] and second.left == [3]


def test_the_roster_counts_people_not_sockets() -> None:
    roster = Roster()
    assert roster.add(1, 10, person(10))       # first tab: came online
    assert not roster.add(1, 10, person(10))   # second tab: already online
    assert roster.add(1, 11, person(11))
    assert roster.count(1) == 2
    assert [p["id"] for p in roster.first(1, 1)] == [10]
    assert not roster.remove(1, 10)            # one tab closed: still online
    assert roster.remove(1, 10)                # last tab: went offline
    assert not roster.remove(1, 10)            # unknown: nothing happens
    assert roster.remove(1, 11) and roster.size() == 0


def test_a_large_room_waits_longer_between_batches() -> None:
    sizes = {1: 10, 2: 5_000}  # people online; one delivery per member and batch
    batches = RoomBatches(interval=1.0, spacing=lambda room: sizes[room] / 500)
    for room in (1, 2):
        batches.presence(room, 1, person(1), True, now=0.0)
    assert {b.room_id for b in batches.take_due(0.0)} == {1, 2}
    for room in (1, 2):
        batches.presence(room, 2, person(2), True, now=0.5)
    assert [b.room_id for b in batches.take_due(1.0)] == [1]  # the small room: 1 s
    assert batches.take_due(9.9) == []
    assert [b.room_id for b in batches.take_due(10.0)] == [2]  # 5,000 online: 10 s
