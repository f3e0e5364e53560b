"""Accounts without a server: lockout and its expiry, one answer for unknown names, password
rules, one-time passwords, disabled accounts and what admins may do."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from streamzy.clock import ManualClock, as_utc
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.events import SessionsEnded
from streamzy.wiring import Services
from tests.conftest import CLIENT, TEST_PASSWORD, audit_rows, make_user

WRONG = "not the password at all"
NEW_PASSWORD = "a different sturdy passphrase 77"


async def test_five_failures_lock_the_account_even_against_the_right_password(
        services: Services, clock: ManualClock) -> None:
    user = await make_user(services, "alice")
    accounts = services.accounts
    for _ in range(4):
        assert (await accounts.authenticate("alice", WRONG, CLIENT)).reason == "bad_credentials"
    assert (await accounts.get(user.id)).locked_until is None  # type: ignore[union-attr]
    fifth = await accounts.authenticate("alice", WRONG, CLIENT)
    assert fifth.reason == "bad_credentials" and fifth.user is None  # no hint it just locked

    locked = await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)
    assert locked.reason == "locked" and locked.user is None
    stored = await accounts.get(user.id)
    assert stored is not None and stored.locked_until is not None
    assert as_utc(stored.locked_until) == clock.now() + timedelta(minutes=15)
    assert len(await audit_rows(services, "account_locked")) == 1


async def test_the_lock_expires_with_the_clock_and_the_count_starts_again(
        services: Services, clock: ManualClock) -> None:
    await make_user(services, "alice")
    accounts = services.accounts
    for _ in range(5):
        await accounts.authenticate("alice", WRONG, CLIENT)
    clock.advance(15 * 60 - 1)
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "locked"
    clock.advance(1)  # the 15 minutes are over
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"
    # A fresh count: four more failures do not lock it again.
    for _ in range(4):
        await accounts.authenticate("alice", WRONG, CLIENT)
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"


async def test_a_success_clears_earlier_failures(services: Services) -> None:
    user = await make_user(services, "alice")
    accounts = services.accounts
    for _ in range(4):
        await accounts.authenticate("alice", WRONG, CLIENT)
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"
    assert (await accounts.get(user.id)).failed_logins == 0  # type: ignore[union-attr]
    for _ in range(4):
        await accounts.authenticate("alice", WRONG, CLIENT)
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"


async def test_a_lookalike_name_counts_against_the_same_account(services: Services) -> None:
    await make_user(services, "alice")
    for name in ("ALICE", "Alice", "\uff41\uff4c\uff49\uff43\uff45", " alice ", "alice"):
        await services.accounts.authenticate(name, WRONG, CLIENT)  # five spellings, one lock
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "locked"


async def test_an_unknown_name_gets_the_answer_a_wrong_password_gets(
        services: Services) -> None:
    await make_user(services, "alice")
    unknown = await services.accounts.authenticate("nobody", TEST_PASSWORD, CLIENT)
    wrong = await services.accounts.authenticate("alice", WRONG, CLIENT)
    assert (unknown.user, unknown.reason) == (wrong.user, wrong.reason) == (None,
                                                                           "bad_credentials")
    rows = await audit_rows(services, "login_failed")
    unknown_row = json.loads(rows[0].detail)
    assert rows[0].user_id is None and unknown_row["reason"] == "unknown_user"
    assert "nobody" not in rows[0].detail  # people type passwords into the username box
    again = await services.accounts.authenticate("nobody", WRONG, CLIENT)
    assert again.reason == "bad_credentials"
    rows = await audit_rows(services, "login_failed")
    assert json.loads(rows[-1].detail)["name_fingerprint"] == unknown_row["name_fingerprint"]


async def test_an_unknown_name_never_locks_or_creates_anything(services: Services) -> None:
    for _ in range(10):
        assert (await services.accounts.authenticate("ghost", WRONG, CLIENT)).reason \
            == "bad_credentials"
    assert await services.accounts.by_username("ghost") is None
    assert await audit_rows(services, "account_locked") == []


async def test_password_change_rules(services: Services) -> None:
    user = await make_user(services, "alice")
    accounts = services.accounts

    async def change(current: str, new: str) -> None:
        await accounts.change_password(user.id, current, new, CLIENT, session_id=None,
                                       end_other_sessions=False)

    with pytest.raises(Invalid) as wrong:
        await change(WRONG, NEW_PASSWORD)
    assert wrong.value.code == "wrong_password"
    assert len(await audit_rows(services, "password_change_failed")) == 1
    for weak in ("short1!", TEST_PASSWORD, "password1234", "alice is my name 2030",
                 "aaaaaaaaaaaaaaaa"):
        with pytest.raises(Invalid) as refused:
            await change(TEST_PASSWORD, weak)
        assert refused.value.code == "weak_password", weak
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"

    await change(TEST_PASSWORD, NEW_PASSWORD)
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "bad_credentials"
    assert (await accounts.authenticate("alice", NEW_PASSWORD, CLIENT)).reason == "ok"
    assert len(await audit_rows(services, "password_changed")) == 1


async def test_passwords_are_used_exactly_as_typed(services: Services) -> None:
    long_one = "p" * 72 + "-and-then-some " + "\u00e9\u00e8\u4e2d" * 40
    await make_user(services, "alice", long_one)
    assert (await services.accounts.authenticate("alice", long_one, CLIENT)).reason == "ok"
    # bcrypt reads 72 bytes: the pre-hash makes the rest count too.
    assert (await services.accounts.authenticate("alice", "p" * 72, CLIENT)).reason \
        == "bad_credentials"


async def test_changing_the_password_can_end_the_other_sessions(services: Services) -> None:
    user = await make_user(services, "alice")
    _, current = await services.sessions.issue(user.id, CLIENT)
    other_token, _ = await services.sessions.issue(user.id, CLIENT)
    await services.accounts.change_password(user.id, TEST_PASSWORD, NEW_PASSWORD, CLIENT,
                                            session_id=current, end_other_sessions=True)
    assert [s.id for s in await services.sessions.list_for_user(user.id)] == [current]
    assert (await services.sessions.resolve(other_token)).session is None


async def test_a_new_account_has_a_one_time_password_that_expires(
        services: Services, clock: ManualClock) -> None:
    user, password = await services.accounts.create_user("newbie", "New Bie", "n@example.org")
    assert user.must_change_password
    first = await services.accounts.authenticate("newbie", password, CLIENT)
    assert first.reason == "ok" and first.user is not None and first.user.must_change_password
    clock.advance(72 * 3600)
    expired = await services.accounts.authenticate("newbie", password, CLIENT)
    assert expired.reason == "expired_one_time_password" and expired.user is None


async def test_the_one_time_password_must_be_replaced_to_clear_the_flag(
        services: Services) -> None:
    user, password = await services.accounts.create_user("newbie", "New Bie", "n@example.org")
    with pytest.raises(Invalid):
        await services.accounts.change_password(user.id, password, password, CLIENT,
                                                session_id=None, end_other_sessions=False)
    await services.accounts.change_password(user.id, password, NEW_PASSWORD, CLIENT,
                                            session_id=None, end_other_sessions=False)
    changed = await services.accounts.get(user.id)
    assert changed is not None and not changed.must_change_password
    assert changed.password_expires_at is None


async def test_a_disabled_account_cannot_sign_in_and_loses_its_sessions(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    user = await make_user(services, "alice")
    token, _ = await services.sessions.issue(user.id, CLIENT)
    ended: list[str] = []

    async def on_end(event: SessionsEnded) -> None:
        ended.append(event.reason)

    services.events.subscribe(SessionsEnded, on_end)
    await services.accounts.set_active(admin.id, user.id, False, CLIENT)
    assert ended == ["disabled"]
    assert (await services.sessions.resolve(token)).session is None
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "disabled"
    # Only the right password learns that the account is disabled.
    assert (await services.accounts.authenticate("alice", WRONG, CLIENT)).reason \
        == "bad_credentials"
    await services.accounts.set_active(admin.id, user.id, True, CLIENT)
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"


async def test_a_disabled_account_cannot_change_its_password(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    user = await make_user(services, "alice")
    await services.accounts.set_active(admin.id, user.id, False, CLIENT)
    with pytest.raises(NotFound):
        await services.accounts.change_password(user.id, TEST_PASSWORD, NEW_PASSWORD, CLIENT,
                                                session_id=None, end_other_sessions=False)


async def test_admins_cannot_remove_themselves_or_the_last_admin(services: Services) -> None:
    boss = await make_user(services, "boss", admin=True)
    with pytest.raises(Forbidden):
        await services.accounts.set_active(boss.id, boss.id, False, CLIENT)
    with pytest.raises(Forbidden):
        await services.accounts.set_admin(boss.id, boss.id, False, CLIENT)
    other = await make_user(services, "other", admin=True)
    await services.accounts.set_admin(boss.id, other.id, False, CLIENT)
    with pytest.raises(Conflict) as last:
        await services.accounts.set_active(other.id, boss.id, False, CLIENT)
    assert last.value.code == "last_admin"
    still = await services.accounts.get(boss.id)
    assert still is not None and still.is_active and still.is_admin  # rolled back


async def test_unlock_and_reset_password(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    user = await make_user(services, "alice")
    for _ in range(5):
        await services.accounts.authenticate("alice", WRONG, CLIENT)
    await services.accounts.unlock(admin.id, user.id, CLIENT)
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "ok"

    token, _ = await services.sessions.issue(user.id, CLIENT)
    password = await services.accounts.reset_password(admin.id, user.id, CLIENT)
    assert password != TEST_PASSWORD and len(password) == 16
    assert (await services.sessions.resolve(token)).session is None
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "bad_credentials"
    fresh = await services.accounts.authenticate("alice", password, CLIENT)
    assert fresh.reason == "ok" and fresh.user is not None and fresh.user.must_change_password


async def test_bots_never_sign_in_with_a_password(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    bot, _ = await services.bots.create(admin.id, "helper-bot", "Helper", [], CLIENT)
    for password in ("", TEST_PASSWORD):
        assert (await services.accounts.authenticate("helper-bot", password, CLIENT)).reason \
            == "bad_credentials"
    with pytest.raises(Invalid):
        await services.accounts.reset_password(admin.id, bot.id, CLIENT)


async def test_usernames_are_normalised_and_unique(services: Services) -> None:
    user, _ = await services.accounts.create_user("  Dana.S ", "Dana", "d@example.org")
    assert user.username == "dana.s"
    with pytest.raises(Conflict):
        await services.accounts.create_user("DANA.S", "Impostor", "i@example.org")
    for bad in ("d", "\u0430dmin", "dana s", "-dana", "x" * 33):  # Cyrillic a in the second
        with pytest.raises(Invalid):
            await services.accounts.create_user(bad, "Bad", "b@example.org")

