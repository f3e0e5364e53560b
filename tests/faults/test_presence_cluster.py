"""Presence across two processes over Redis: people are counted once in the cluster, a
crashed process's people go offline, and a Redis that comes back empty is refilled."""

from __future__ import annotations

from typing import Any

from tests.realtime.helpers import ChatClient, connected
from tests.waiting import wait_until


def presence(client: ChatClient) -> list[dict[str, Any]]:
    return [data for name, data in client.events if name == "presence"]


def came(client: ChatClient, username: str) -> bool:
    return any(username in {p["username"] for p in e["joined"]} for e in presence(client))


def went(client: ChatClient, user_id: int) -> bool:
    return any(user_id in e["left"] for e in presence(client))


async def join(client: ChatClient, room: int) -> dict[str, Any]:
    ack = await client.call("join", {"room": room})
    assert ack["ok"], ack
    return dict(ack)


async def test_people_are_counted_once_across_processes(two_processes: dict[str, Any]) -> None:
    one, two, room, cookies = (two_processes[k] for k in ("one", "two", "room", "cookies"))
    ben = await connected(two.url, cookie=cookies["ben"])
    ann_one = await connected(one.url, cookie=cookies["ann"])
    ann_two = await connected(two.url, cookie=cookies["ann"])
    cat = await connected(one.url, cookie=cookies["cat"])
    try:
        assert (await join(ben, room))["online_count"] == 1
        ack = await join(ann_one, room)  # on the other process: Ben is listed all the same
        assert ack["online_count"] == 2
        assert {p["username"] for p in ack["online"]} == {"ann", "ben"}
        ann = next(p["id"] for p in ack["online"] if p["username"] == "ann")
        await ben.wait_for(lambda: came(ben, "ann"))  # the delta came from process one
        assert (await join(ann_two, room))["online_count"] == 2  # a second tab: still two

        await ann_one.close()  # Ann is still online on process two
        await join(cat, room)  # a later change, as a marker
        await ben.wait_for(lambda: came(ben, "cat"))
        assert not went(ben, ann)
        await ann_two.close()  # her last socket anywhere
        await ben.wait_for(lambda: any(e["left"] == [ann] and e["online_count"] == 2
                                       for e in presence(ben)))
    finally:
        for client in (ben, ann_one, ann_two, cat):
            await client.close()


async def test_a_crashed_process_takes_its_people_offline(two_processes: dict[str, Any]) -> None:
    one, two, room, cookies = (two_processes[k] for k in ("one", "two", "room", "cookies"))
    ben = await connected(two.url, cookie=cookies["ben"], rooms=[room])
    cat = await connected(one.url, cookie=cookies["cat"])
    try:
        cat_id = next(p["id"] for p in (await join(cat, room))["online"]
                      if p["username"] == "cat")
        await ben.wait_for(lambda: came(ben, "cat"))
        one.kill9()  # no disconnect runs: only the heartbeat's silence tells
        await ben.wait_for(lambda: went(ben, cat_id), timeout=20)
        assert (await join(ben, room))["online_count"] == 1
    finally:
        await ben.close()
        await cat.close()


async def test_a_redis_that_comes_back_empty_is_refilled(two_processes: dict[str, Any]) -> None:
    one, two, redis, room, cookies = (two_processes[k]
                                      for k in ("one", "two", "redis", "room", "cookies"))
    ann = await connected(one.url, cookie=cookies["ann"], rooms=[room])
    ben = await connected(two.url, cookie=cookies["ben"], rooms=[room])
    dan = await connected(one.url, cookie=cookies["dan"])
    try:
        redis.stop()
        await redis.start()  # same port, nothing kept
        # Each process makes Redis agree with its sockets again (a resync after the error).
        await wait_until(lambda: _count_is(dan, room, 3), timeout=20,
                         what="both processes' people counted again")
    finally:
        for client in (ann, ben, dan):
            await client.close()


async def _count_is(client: ChatClient, room: int, expected: int) -> bool:
    ack = await client.call("join", {"room": room})
    return bool(ack.get("ok")) and ack["online_count"] == expected
