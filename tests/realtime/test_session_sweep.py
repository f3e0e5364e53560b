"""The periodic session sweep: one bulk check ends expired sockets, records activity,
and catches revocations whose push was lost. Driven with sweep_once and a ManualClock."""

from __future__ import annotations

from sqlalchemy import select, update

from streamzy.clock import as_utc
from streamzy.realtime.sweeper import SessionSweeper
from streamzy.storage.models import BotToken, Session
from tests.conftest import LiveServer
from tests.realtime.helpers import connected, make_room
from tests.realtime.test_bots import make_bot


def sweeper(server: LiveServer) -> SessionSweeper:
    assert server.app.sweeper is not None
    return server.app.sweeper


async def last_seen(server: LiveServer) -> list:
    async with server.services.db.unit() as db:
        return [as_utc(t) for t in (await db.execute(select(Session.last_seen_at))).scalars()]


async def test_sweep_drops_an_idle_socket_that_sends_nothing(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    await alice.call("join", {"room": room})
    await bob.call("join", {"room": room})
    server.clock.advance(3600)
    assert (await bob.send(room, "bob is active"))["ok"]  # a touch, deferred or written
    await sweeper(server).sweep_once()
    server.clock.advance(3600 + 5)  # alice: idle past 2 h; bob: active an hour ago
    await sweeper(server).sweep_once()
    assert await alice.end_reason() == "idle"
    assert bob.sio.connected and (await bob.send(room, "still here"))["ok"]
    assert len(await last_seen(server)) == 1  # alice's session row is gone
    await bob.close()


async def test_activity_inside_a_fresh_check_is_written_by_the_sweep(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    await alice.call("join", {"room": room})
    server.clock.advance(61)
    await sweeper(server).sweep_once()  # checked just now: the next send skips the database
    assert (await alice.send(room, "hello"))["ok"]
    assert await last_seen(server) != [server.clock.now()]  # deferred, not written yet
    await sweeper(server).sweep_once()
    assert await last_seen(server) == [server.clock.now()]
    # Without that write the session would end 2 h after the join; it lives on.
    server.clock.advance(7200 - 10)
    await sweeper(server).sweep_once()
    assert (await alice.send(room, "still signed in"))["ok"]
    await alice.close()


async def test_sweep_catches_a_lost_revocation(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice")
    _, token = await make_bot(server, "echo", [room])
    bot = await connected(server, token=token)
    await alice.call("join", {"room": room})
    assert (await bot.call("join", {"room": room}))["ok"]
    # Revoked behind the server's back (e.g. by a process whose push never arrived).
    async with server.services.db.unit() as db:
        await db.execute(update(BotToken).values(revoked_at=server.clock.now()))
        await db.execute(Session.__table__.delete())
    await sweeper(server).sweep_once()
    assert await bot.end_reason() == "token_revoked"
    assert await alice.end_reason() == "unknown"


async def test_sweep_keeps_no_expired_session_alive(server: LiveServer) -> None:
    alice = await connected(server, "alice")
    server.clock.advance(12 * 3600 + 1)  # past the absolute lifetime, whatever the activity
    await sweeper(server).sweep_once()
    assert await alice.end_reason() == "absolute"
    assert await last_seen(server) == []
