"""The per-process room index behind presence and leave."""

from __future__ import annotations

from streamzy.realtime.room_index import RoomIndex


def test_both_directions_stay_in_step() -> None:
    index = RoomIndex()
    index.add("a", 1)
    index.add("a", 2)
    index.add("b", 1)
    assert sorted(index.members(1)) == ["a", "b"] and index.members(2) == ["a"]
    assert index.joined("a", 2) and not index.joined("b", 2)
    index.discard("a", 1)
    assert index.members(1) == ["b"] and not index.joined("a", 1) and index.joined("a", 2)
    assert index.remove("a") == {2}
    assert index.members(2) == [] and not index.joined("a", 2)
    assert index.remove("a") == set()  # a second disconnect changes nothing
    index.discard("b", 1)
    assert index.members(1) == [] and index._members == {}  # empty rooms are forgotten
