"""A client that drops off the network for a minute catches up in order, exactly once."""

from __future__ import annotations

from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room


async def test_client_offline_for_60s_gets_every_missed_message_once(
        server: LiveServer) -> None:
    room = await make_room(server, "general")
    talker = await connected(server, "talker")
    sleeper = await connected(server, "sleeper")
    try:
        await talker.call("join", {"room": room})
        await sleeper.call("join", {"room": room})
        await talker.send(room, "hello")
        await sleeper.wait_for(lambda: len(sleeper.messages) == 1)
        seen = max(m["seq"] for m in sleeper.messages)
        cookie = sleeper.cookie
        await sleeper.sio.eio.disconnect(abort=True)  # the network vanishes: no goodbye
        for tick in range(40):  # a minute of conversation at the talker's allowed pace
            server.clock.advance(1.5)
            assert (await talker.send(room, f"t+{tick * 1.5}s"))["ok"]
        sleeper = await connected(server, cookie=cookie)
        joined = await sleeper.call("join", {"room": room, "since_seq": seen})
        assert [m["text"] for m in joined["messages"]] == [f"t+{t * 1.5}s" for t in range(40)]
        await talker.send(room, "welcome back")
        await sleeper.wait_for(lambda: "welcome back" in sleeper.texts(room))
        seqs = [m["seq"] for m in joined["messages"]] + [m["seq"] for m in sleeper.messages]
        assert seqs == list(range(seen + 1, seen + 42))
    finally:
        await talker.close()
        await sleeper.close()
