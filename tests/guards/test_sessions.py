"""Server-side sessions without a server: issue, resolve, revoke, idle and absolute expiry on
a manual clock, and a database that holds only digests of the tokens."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update

from streamzy.clock import ManualClock
from streamzy.services.events import EventBus, SessionsEnded
from streamzy.storage.models import Session, User
from streamzy.wiring import Services
from tests.conftest import CLIENT, make_user

IDLE = 2 * 3600
ABSOLUTE = 12 * 3600


class Ended:
    """Records the SessionsEnded events the store publishes (realtime drops sockets on them)."""

    def __init__(self, events: EventBus) -> None:
        self.calls: list[tuple[list[int], str]] = []
        events.subscribe(SessionsEnded, self._record)

    async def _record(self, event: SessionsEnded) -> None:
        self.calls.append((sorted(event.session_ids), event.reason))


async def stored_sessions(services: Services) -> list[Session]:
    async with services.db.unit() as db:
        return list((await db.execute(select(Session).order_by(Session.id))).scalars())


async def test_issue_then_resolve(services: Services) -> None:
    user = await make_user(services, "alice")
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    resolved = await services.sessions.resolve(token)
    assert resolved.reason == "ok" and resolved.session is not None
    active = resolved.session
    assert (active.id, active.user_id, active.username) == (session_id, user.id, "alice")
    assert len(active.csrf_token) >= 32
    assert (await services.sessions.check(session_id)).session == active


async def test_the_database_keeps_only_a_digest_of_the_token(services: Services) -> None:
    user = await make_user(services, "alice")
    token, _ = await services.sessions.issue(user.id, CLIENT)
    assert len(token) >= 86  # 64 random bytes, url-safe
    [row] = await stored_sessions(services)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in " ".join(str(v) for v in vars(row).values())
    assert (row.client_ip, row.user_agent) == (CLIENT.ip, CLIENT.user_agent)
    # The digest itself is not a credential.
    assert (await services.sessions.resolve(row.token_hash)).session is None


async def test_every_sign_in_gets_a_new_token(services: Services) -> None:
    user = await make_user(services, "alice")
    issued = [await services.sessions.issue(user.id, CLIENT) for _ in range(3)]
    assert len({token for token, _ in issued}) == 3
    assert len({csrf for csrf in [(await services.sessions.resolve(t)).session.csrf_token  # type: ignore[union-attr]
                                  for t, _ in issued]}) == 3


async def test_missing_forged_and_oversized_tokens_resolve_to_nothing(
        services: Services) -> None:
    assert (await services.sessions.resolve(None)).reason == "missing"
    assert (await services.sessions.resolve("")).reason == "missing"
    assert (await services.sessions.resolve("x" * 201)).reason == "missing"
    assert (await services.sessions.resolve("forged-session-value")).reason == "unknown"


async def test_idle_expiry_follows_the_clock(services: Services, clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    ended = Ended(services.events)
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    clock.advance(IDLE)
    assert (await services.sessions.resolve(token, touch=False)).reason == "ok"
    clock.advance(1)
    assert (await services.sessions.resolve(token)).reason == "idle"
    assert ended.calls == [([session_id], "idle")]
    assert await stored_sessions(services) == []  # deleted on sight
    assert (await services.sessions.resolve(token)).reason == "unknown"


async def test_activity_keeps_a_session_alive_until_the_absolute_limit(
        services: Services, clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    ended = Ended(services.events)
    for _ in range(ABSOLUTE // 3600):  # active every hour: never idle
        clock.advance(3600)
        assert (await services.sessions.resolve(token)).reason == "ok"
    clock.advance(1)
    assert (await services.sessions.resolve(token)).reason == "absolute"
    assert ended.calls == [([session_id], "absolute")]


async def test_a_touch_counts_activity_that_is_not_a_request(services: Services,
                                                             clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    clock.advance(IDLE - 10)
    await services.sessions.check(session_id, touch=True)  # e.g. a chat message
    clock.advance(IDLE - 10)
    assert (await services.sessions.resolve(token)).reason == "ok"


async def test_a_resolve_within_a_minute_does_not_write(services: Services,
                                                        clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    token, _ = await services.sessions.issue(user.id, CLIENT)
    issued_at = clock.now()
    clock.advance(59)
    assert (await services.sessions.resolve(token)).session.last_seen_at == issued_at  # type: ignore[union-attr]
    clock.advance(1)
    assert (await services.sessions.resolve(token)).session.last_seen_at == clock.now()  # type: ignore[union-attr]


async def test_revoke_ends_one_session(services: Services) -> None:
    user = await make_user(services, "alice")
    ended = Ended(services.events)
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    other, _ = await services.sessions.issue(user.id, CLIENT)
    assert await services.sessions.revoke(session_id, "logout") is True
    assert (await services.sessions.resolve(token)).reason == "unknown"
    assert (await services.sessions.resolve(other)).reason == "ok"
    assert await services.sessions.revoke(session_id, "logout") is False  # already gone
    assert ended.calls == [([session_id], "logout")]


async def test_revoke_user_ends_all_but_the_one_kept(services: Services) -> None:
    alice = await make_user(services, "alice")
    bob = await make_user(services, "bob")
    ended = Ended(services.events)
    issued = [await services.sessions.issue(alice.id, CLIENT) for _ in range(3)]
    bobs, _ = await services.sessions.issue(bob.id, CLIENT)
    kept = issued[0][1]
    assert await services.sessions.revoke_user(alice.id, "password_changed", keep=kept) == 2
    assert [s.id for s in await services.sessions.list_for_user(alice.id)] == [kept]
    assert ended.calls == [(sorted(i for _, i in issued[1:]), "password_changed")]
    assert (await services.sessions.resolve(bobs)).reason == "ok"  # nobody else's


async def test_a_disabled_user_has_no_live_session(services: Services) -> None:
    user = await make_user(services, "alice")
    token, session_id = await services.sessions.issue(user.id, CLIENT)
    async with services.db.unit() as db:  # disabled by another process
        await db.execute(update(User).where(User.id == user.id).values(is_active=False))
    assert (await services.sessions.check(session_id)).reason == "disabled"
    assert (await services.sessions.resolve(token)).reason == "unknown"  # deleted on sight


async def test_purge_and_check_many_end_exactly_the_expired(services: Services,
                                                            clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    _, old = await services.sessions.issue(user.id, CLIENT)
    clock.advance(IDLE - 60)
    _, fresh = await services.sessions.issue(user.id, CLIENT)
    clock.advance(120)  # old: idle 2 h + 1 min; fresh: 2 min
    ended = Ended(services.events)
    alive = await services.sessions.check_many([old, fresh, 424242])
    assert set(alive) == {fresh}
    assert sorted(ended.calls) == [([old], "idle"), ([424242], "unknown")]
    clock.advance(IDLE)
    assert await services.sessions.purge_expired() == 1
    assert await stored_sessions(services) == []
