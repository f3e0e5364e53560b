"""Each metric moves when its event happens, driven through the real app: a real Hypercorn,
real Socket.IO clients, real sign-ins; read back through /metrics and the official parser."""

from __future__ import annotations

from typing import Any

import pytest
import socketio
from sqlalchemy import select, text

from tests.conftest import LiveServer, login
from tests.observability.scrape import TOKEN, Exposition, scrape
from tests.realtime.helpers import ChatClient, connected, make_room
from tests.waiting import wait_until


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"metrics_token": TOKEN, "rate_messages": "3/m"}


def histogram_count(scraped: Exposition, name: str) -> float:
    return scraped.value(f"{name}_count")


async def test_a_sent_message_moves_the_send_path_metrics(server: LiveServer) -> None:
    room = await make_room(server, "general")
    before = await scrape(server)
    alice = await connected(server, "alice", rooms=[room])
    bob = await connected(server, "bob", rooms=[room])
    try:
        assert (await scrape(server)).value("streamzy_sockets_connected") == 2
        ack = await alice.send(room, "hello")
        assert ack["ok"], ack
        await bob.wait_for(lambda: bob.texts(room) == ["hello"])

        async def delivered() -> bool:
            return (await scrape(server)).value("streamzy_messages_delivered_total") == 1

        await wait_until(delivered, what="the delivery counted")
        after = await scrape(server)
    finally:
        await alice.close()
        await bob.close()
    assert before.value("streamzy_messages_stored_total") == 0
    assert after.value("streamzy_messages_stored_total") == 1
    assert histogram_count(after, "streamzy_ack_latency_seconds") == 1
    assert after.value("streamzy_ack_latency_seconds_bucket", le="+Inf") == 1
    assert histogram_count(after, "streamzy_commit_batch_size") == 1
    assert after.value("streamzy_commit_batch_size_sum") == 1
    assert histogram_count(after, "streamzy_commit_latency_seconds") == 1
    assert after.value("streamzy_socket_connects_total") == 2
    # Both sockets gone: the gauge is read at scrape time, from the live connections.
    await wait_until(lambda: len(server.app.realtime.connections) == 0, what="disconnects")
    assert (await scrape(server)).value("streamzy_sockets_connected") == 0


async def test_refused_sends_are_counted_by_code_and_by_rule(server: LiveServer) -> None:
    room = await make_room(server, "general")
    alice = await connected(server, "alice", rooms=[room])
    try:
        bad = await alice.call("message", {"room": room, "text": "no client id"})
        assert bad["code"] == "invalid_input"
        answers = [await alice.send(room, f"m{i}") for i in range(4)]  # 3 a minute
        assert [a["ok"] for a in answers] == [True, True, True, False]
        assert answers[3]["code"] == "rate_limited"
        scraped = await scrape(server)
    finally:
        await alice.close()
    assert scraped.value("streamzy_messages_refused_total", code="invalid_input") == 1
    assert scraped.value("streamzy_messages_refused_total", code="rate_limited") == 1
    assert scraped.value("streamzy_rate_limit_refusals_total", rule="messages") == 1
    assert scraped.value("streamzy_messages_stored_total") == 3
    assert histogram_count(scraped, "streamzy_ack_latency_seconds") == 3  # stored ones only


async def test_refused_connects_are_counted_by_code(server: LiveServer) -> None:
    nobody = ChatClient(server)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await nobody.connect()
    forged = ChatClient(server, cookie="not-a-session")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await forged.connect()
    bot = ChatClient(server, token="szb_not_a_token")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await bot.connect()
    scraped = await scrape(server)
    assert scraped.value("streamzy_socket_refusals_total", code="not_authenticated") == 2
    assert scraped.value("streamzy_socket_refusals_total", code="invalid_token") == 1
    assert scraped.value("streamzy_socket_connects_total") == 0


async def test_sign_ins_by_outcome_and_a_lockout(server: LiveServer) -> None:
    await server.make_user("carol")
    async with server.client() as client:
        assert (await login(client, "carol")).status_code == 302
    async with server.client() as client:
        assert (await login(client, "nobody-here", "wrong password 1")).status_code == 401
        for i in range(5):  # the fifth wrong password locks the account
            assert (await login(client, "carol", f"wrong password {i}")).status_code == 401
        assert (await login(client, "carol")).status_code == 401  # locked, right password
    scraped = await scrape(server)
    assert scraped.value("streamzy_sign_ins_total", outcome="ok") == 1
    assert scraped.value("streamzy_sign_ins_total", outcome="bad_credentials") == 6
    assert scraped.value("streamzy_sign_ins_total", outcome="locked") == 1
    assert scraped.value("streamzy_lockouts_total") == 1
    # Every check (and the hash of the unknown name's stand-in) went through the pool.
    assert histogram_count(scraped, "streamzy_bcrypt_queue_wait_seconds") >= 8


async def test_http_rate_limit_refusals_by_rule(
        settings_factory: Any) -> None:
    from streamzy.clock import ManualClock
    from tests.conftest import start_server

    live, shutdown = await start_server(
        settings_factory(metrics_token=TOKEN, rate_apply_status="2/5m"), ManualClock())
    try:
        async with live.client() as client:
            codes = [(await client.post("/apply/status")).status_code for _ in range(3)]
        assert codes[-1] == 429, codes
        scraped = await scrape(live)
        assert scraped.value("streamzy_rate_limit_refusals_total", rule="apply_status") == 1
    finally:
        await shutdown()


# The audit-write-failure alert is off here: its own audit row would fail too, a moment
# later, and move the count after the scrape.
@pytest.mark.parametrize("server_settings", [
    {"metrics_token": TOKEN, "rate_messages": "3/m", "alert_audit_write_failures": "off"}])
async def test_audit_write_failures_are_counted(server: LiveServer) -> None:
    """The audit table is made unwritable; a refused connect still goes out, and the row
    that could not be stored is counted (the number /readyz shows)."""
    async with server.services.db.unit() as db:
        await db.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        nobody = ChatClient(server)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await nobody.connect()
        scraped = await scrape(server)
    finally:
        async with server.services.db.unit() as db:
            await db.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    assert scraped.value("streamzy_audit_write_failures_total") >= 1
    assert scraped.value("streamzy_audit_write_failures_total") == \
        server.services.audit_log.write_failures


async def test_database_pool_use_is_read_at_scrape_time(server: LiveServer) -> None:
    assert (await scrape(server)).value("streamzy_db_pool_capacity") == 30
    async with server.services.db.unit() as db:
        await db.execute(select(1))  # holds a pooled connection until the block ends
        held = await scrape(server)
    assert held.value("streamzy_db_pool_checked_out") >= 1
