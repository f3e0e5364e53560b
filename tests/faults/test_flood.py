"""A flooding client is throttled, then disconnected; everyone else carries on."""

from __future__ import annotations

from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room


async def test_flooder_is_throttled_then_disconnected(server: LiveServer) -> None:
    room = await make_room(server, "general")
    flooder = await connected(server, "flooder")
    calm = await connected(server, "calm")
    kicked: list[dict] = []
    flooder.sio.on("kicked", lambda data: kicked.append(data))
    try:
        await flooder.call("join", {"room": room})
        await calm.call("join", {"room": room})
        codes = []
        for k in range(60):
            if not flooder.sio.connected:
                break
            try:
                ack = await flooder.send(room, f"spam {k}")
            except Exception:  # the server hung up mid-flood
                break
            codes.append(ack.get("code", "ok"))
        assert codes[:30] == ["ok"] * 30
        assert "rate_limited" in codes
        await flooder.wait_for(lambda: kicked and flooder.disconnected.is_set(),
                               what="the kick and the disconnect")
        assert kicked[0]["code"] == "flooding"
        for k in range(5):
            assert (await calm.send(room, f"still fine {k}"))["ok"]
    finally:
        await flooder.close()
        await calm.close()
    assert len(await server.audit_rows("flood_disconnected")) == 1
    assert len(await server.audit_rows("rate_limited")) == 1  # one row, not one per refusal


async def test_event_flood_other_than_messages_is_limited_too(server: LiveServer) -> None:
    room = await make_room(server, "general")
    client = await connected(server, "typist")
    try:
        await client.call("join", {"room": room})
        results = [await client.call("typing", {"room": room}) for _ in range(310)]
        refused = [r for r in results if not r["ok"]]
        assert refused and refused[0]["code"] == "rate_limited"
    finally:
        await client.close()
