"""TOTP and recovery codes without a server: window, replay, races, lockout, sealing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.services.errors import Conflict, Forbidden, Invalid
from streamzy.services.recovery_codes import read_code
from streamzy.storage.models import RecoveryCode, TotpCredential, User
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, TEST_PASSWORD, audit_rows, make_settings, make_user
from tests.totp import code_at, enrol

WRONG = "not the password at all"


async def _user(services: Services, name: str = "alice") -> User:
    return await make_user(services, name)


async def _flag(services: Services, user_id: int) -> bool:
    found = await services.accounts.get(user_id)
    assert found is not None
    return bool(found.has_second_factor)


async def test_enrolment_needs_a_correct_code_then_turns_the_flag_on(
        services: Services) -> None:
    user = await _user(services)
    factors = services.second_factors
    enrolment = await factors.begin_totp(user.id, user.username, CLIENT)
    assert len(enrolment.secret) == 32  # 160 bits of base32
    assert enrolment.uri.startswith("otpauth://totp/Streamzy:alice?secret=")
    assert (await factors.status(user.id)).totp_pending
    with pytest.raises(Invalid):
        await factors.confirm_totp(user.id, "000000" if code_at(enrolment.secret,
                                   services.clock) != "000000" else "111111", CLIENT)
    assert not await _flag(services, user.id)
    assert (await factors.pending_totp(user.id, "alice")) == enrolment
    codes = await factors.confirm_totp(user.id, code_at(enrolment.secret, services.clock),
                                       CLIENT)
    assert len(codes) == len(set(codes)) == 10
    assert all(read_code(c) == ("recovery", c) for c in codes)
    assert await _flag(services, user.id)
    status = await factors.status(user.id)
    assert status.totp and status.recovery_codes_left == 10 and not status.totp_pending
    with pytest.raises(Conflict):
        await factors.begin_totp(user.id, user.username, CLIENT)
    assert [json.loads(r.detail)["method"] for r in
            await audit_rows(services, "second_factor_enrolled")] == ["totp"]


async def test_a_new_enrolment_replaces_an_unconfirmed_secret(services: Services) -> None:
    user = await _user(services)
    first = await services.second_factors.begin_totp(user.id, "alice", CLIENT)
    second = await services.second_factors.begin_totp(user.id, "alice", CLIENT)
    assert first.secret != second.secret
    with pytest.raises(Invalid):
        await services.second_factors.confirm_totp(
            user.id, code_at(first.secret, services.clock, 5), CLIENT)


@pytest.mark.parametrize(("steps", "ok"), [(-2, False), (-1, True), (0, True), (1, True),
                                           (2, False)])
async def test_one_step_either_side_is_accepted(services: Services, steps: int,
                                                ok: bool) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    services.clock.advance(300)
    outcome = await services.second_factors.check_code(
        user.id, code_at(secret, services.clock, steps), CLIENT, purpose="sign_in")
    assert outcome.ok is ok
    assert outcome.method == "totp"
    assert outcome.reason == ("ok" if ok else "wrong_code")


async def test_a_used_code_and_an_older_one_are_refused(services: Services,
                                                        clock: ManualClock) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    factors = services.second_factors
    now_code, earlier = code_at(secret, clock), code_at(secret, clock, -1)
    assert (await factors.check_code(user.id, now_code, CLIENT, purpose="sign_in")).ok
    again = await factors.check_code(user.id, now_code, CLIENT, purpose="sign_in")
    assert (again.ok, again.reason) == (False, "replayed")
    older = await factors.check_code(user.id, earlier, CLIENT, purpose="sign_in")
    assert (older.ok, older.reason) == (False, "replayed")
    clock.advance(30)
    assert (await factors.check_code(user.id, code_at(secret, clock), CLIENT,
                                     purpose="sign_in")).ok
    failed = [json.loads(r.detail) for r in await audit_rows(services, "second_factor_failed")]
    assert [d["reason"] for d in failed] == ["replayed", "replayed"]
    assert all(d["context"] == "sign_in" for d in failed)


async def test_two_racing_uses_of_one_code_pass_once(services: Services) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    code = code_at(secret, services.clock)
    outcomes = await asyncio.gather(*[services.second_factors.check_code(
        user.id, code, CLIENT, purpose="sign_in") for _ in range(6)])
    assert sorted(o.ok for o in outcomes) == [False] * 5 + [True]
    assert {o.reason for o in outcomes if not o.ok} == {"replayed"}


async def test_recovery_codes_work_once_each_and_are_stored_hashed(
        services: Services) -> None:
    user = await _user(services)
    _, codes = await enrol(services, user)
    factors = services.second_factors
    typed = codes[0].lower().replace("-", " ")  # case and grouping do not matter
    used = await factors.check_code(user.id, typed, CLIENT, purpose="sign_in")
    assert (used.ok, used.method) == (True, "recovery")
    again = await factors.check_code(user.id, codes[0], CLIENT, purpose="sign_in")
    assert (again.ok, again.reason) == (False, "wrong_code")  # used: no longer a code
    assert (await factors.status(user.id)).recovery_codes_left == 9
    assert [json.loads(r.detail)["left"] for r in
            await audit_rows(services, "recovery_code_used")] == [9]
    async with services.db.unit() as db:
        stored = list((await db.execute(select(RecoveryCode.code_hash))).scalars())
    assert len(stored) == 10 and not set(stored) & {c for c in codes}
    assert all(len(h) == 64 for h in stored)


async def test_racing_uses_of_one_recovery_code_pass_once(services: Services) -> None:
    user = await _user(services)
    _, codes = await enrol(services, user)
    outcomes = await asyncio.gather(*[services.second_factors.check_code(
        user.id, codes[3], CLIENT, purpose="sign_in") for _ in range(5)])
    assert sum(o.ok for o in outcomes) == 1


async def test_a_recovery_code_of_another_account_does_not_open_this_one(
        services: Services) -> None:
    alice, bob = await _user(services, "alice"), await _user(services, "bob")
    await enrol(services, alice)
    _, bobs = await enrol(services, bob)
    outcome = await services.second_factors.check_code(alice.id, bobs[0], CLIENT,
                                                       purpose="sign_in")
    assert (outcome.ok, outcome.reason) == (False, "wrong_code")


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "\u0661\u0662\u0663\u0664\u0665\u0666",
                                   "\uff11\uff12\uff13\uff14\uff15\uff16",
                                   "x" * 5000, "ABCD-EFGH", "\u017fSSS-AAAA-BBBB", "\U0001f642" * 6,
                                   "123\x00456"])
async def test_malformed_input_is_refused_as_malformed(services: Services,
                                                       typed: str) -> None:
    user = await _user(services)
    await enrol(services, user)
    outcome = await services.second_factors.check_code(user.id, typed, CLIENT,
                                                       purpose="sign_in")
    assert (outcome.ok, outcome.reason) == (False, "malformed")
    stored = await services.accounts.get(user.id)
    assert stored is not None and stored.failed_logins == 0  # not a guess at the code


async def test_five_wrong_codes_lock_the_account_and_then_every_code_is_refused(
        services: Services, clock: ManualClock) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    factors = services.second_factors
    right = code_at(secret, clock)
    wrong = "000000" if right != "000000" else "111111"
    reasons = [(await factors.check_code(user.id, wrong, CLIENT, purpose="sign_in")).reason
               for _ in range(5)]
    assert reasons == ["wrong_code"] * 4 + ["locked"]
    refused = await factors.check_code(user.id, right, CLIENT, purpose="sign_in")
    assert (refused.ok, refused.reason) == (False, "locked")
    assert (await services.accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "locked"
    locked = [json.loads(r.detail) for r in await audit_rows(services, "account_locked")]
    assert locked[0]["via"] == "second_factor"
    clock.advance(15 * 60 + 1)
    assert (await factors.check_code(user.id, code_at(secret, clock), CLIENT,
                                     purpose="sign_in")).ok


async def test_wrong_passwords_and_wrong_codes_share_one_lockout(
        services: Services, clock: ManualClock) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    accounts, factors = services.accounts, services.second_factors
    for _ in range(2):
        assert (await accounts.authenticate("alice", WRONG, CLIENT)).reason == "bad_credentials"
    # The right password only reaches the second step: it does not clear the count.
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason \
        == "second_factor"
    for _ in range(2):
        assert (await factors.check_code(user.id, "999999" if code_at(secret, clock) !=
                                         "999999" else "888888", CLIENT,
                                         purpose="sign_in")).reason == "wrong_code"
    assert (await accounts.authenticate("alice", WRONG, CLIENT)).reason == "bad_credentials"
    assert (await accounts.authenticate("alice", TEST_PASSWORD, CLIENT)).reason == "locked"
    events = [r.event for r in await audit_rows(services)]
    assert "sign_in_second_factor_required" in events and "account_locked" in events
    assert "login_succeeded" not in events


async def test_a_passing_code_clears_earlier_failures(services: Services,
                                                      clock: ManualClock) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    for _ in range(4):
        await services.second_factors.check_code(user.id, "12345x", CLIENT, purpose="sign_in")
        await services.accounts.record_failure(user.id)
    stored = await services.accounts.get(user.id)
    assert stored is not None and stored.failed_logins == 4
    assert (await services.second_factors.check_code(user.id, code_at(secret, clock), CLIENT,
                                                     purpose="sign_in")).ok
    stored = await services.accounts.get(user.id)
    assert stored is not None and stored.failed_logins == 0


async def test_disable_needs_the_password_and_a_code(services: Services,
                                                     clock: ManualClock) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    factors = services.second_factors
    with pytest.raises(Invalid) as wrong_password:
        await factors.disable_totp(user.id, WRONG, code_at(secret, clock), CLIENT)
    assert wrong_password.value.code == "wrong_code"
    with pytest.raises(Invalid):
        await factors.disable_totp(user.id, TEST_PASSWORD, "", CLIENT)
    assert await _flag(services, user.id)
    await factors.disable_totp(user.id, TEST_PASSWORD, code_at(secret, clock), CLIENT)
    assert not await _flag(services, user.id)
    status = await factors.status(user.id)
    assert (status.totp, status.recovery_codes_left) == (False, 0)
    removed = [json.loads(r.detail) for r in await audit_rows(services, "second_factor_removed")]
    assert removed == [{"method": "totp"}]
    contexts = {json.loads(r.detail)["context"] for r in
                await audit_rows(services, "second_factor_failed")}
    assert contexts == {"disable"}


async def test_disable_with_a_recovery_code(services: Services) -> None:
    user = await _user(services)
    _, codes = await enrol(services, user)
    await services.second_factors.disable_totp(user.id, TEST_PASSWORD, codes[9], CLIENT)
    assert not await _flag(services, user.id)


async def test_wrong_codes_while_signed_in_lock_and_end_the_sessions(
        services: Services) -> None:
    user = await _user(services)
    secret, _ = await enrol(services, user)
    await services.sessions.issue(user.id, CLIENT)
    wrong = "000000" if code_at(secret, services.clock) != "000000" else "111111"
    for _ in range(4):
        with pytest.raises(Invalid):
            await services.second_factors.disable_totp(user.id, TEST_PASSWORD, wrong, CLIENT)
    with pytest.raises(Forbidden):
        await services.second_factors.disable_totp(user.id, TEST_PASSWORD, wrong, CLIENT)
    assert await services.sessions.list_for_user(user.id) == []
    assert await _flag(services, user.id)


async def test_regenerating_recovery_codes_needs_a_code_and_replaces_them(
        services: Services, clock: ManualClock) -> None:
    user = await _user(services)
    secret, old = await enrol(services, user)
    factors = services.second_factors
    with pytest.raises(Invalid):
        await factors.regenerate_recovery_codes(user.id, "nonsense", CLIENT)
    new = await factors.regenerate_recovery_codes(user.id, code_at(secret, clock), CLIENT)
    assert len(new) == 10 and not set(new) & set(old)
    assert not (await factors.check_code(user.id, old[0], CLIENT, purpose="sign_in")).ok
    assert (await factors.check_code(user.id, new[0], CLIENT, purpose="sign_in")).ok
    assert len(await audit_rows(services, "recovery_codes_regenerated")) == 1


async def test_no_factor_for_an_account_without_one(services: Services) -> None:
    user = await _user(services)
    outcome = await services.second_factors.check_code(user.id, "123456", CLIENT,
                                                       purpose="step_up")
    assert (outcome.ok, outcome.reason) == (False, "no_factor")


async def test_the_secret_is_sealed_bound_to_its_owner_and_named_by_its_key(
        services: Services) -> None:
    alice, bob = await _user(services, "alice"), await _user(services, "bob")
    secret, _ = await enrol(services, alice)
    await enrol(services, bob)
    async with services.db.unit() as db:
        rows = {r.user_id: (bytes(r.secret), r.master_key_id) for r in
                (await db.execute(select(TotpCredential))).scalars()}
    sealed, key_id = rows[alice.id]
    assert key_id == services.keyring.master.newest_id
    assert secret.encode() not in sealed
    box = services.secret_box
    assert box.open("totp", alice.id, sealed) == secret.encode()
    assert box.open("totp", bob.id, sealed) is None  # copied onto bob's row: opens nothing


async def test_a_secret_no_master_key_opens_makes_the_server_not_ready(
        services: Services, tmp_path: Path, database_url: str) -> None:
    user = await _user(services)
    await enrol(services, user)
    await services.key_watch.check_keys()
    assert services.key_watch.unusable_secrets == 0
    other = build_services(make_settings(tmp_path, database_url,
                                         message_keys=[Fernet.generate_key().decode()]))
    try:
        await other.key_watch.check_keys()
        assert other.key_watch.unusable_secrets == 1
        ready, report = await other.readiness()
        assert not ready and report["keys"] == "1 TOTP secret(s) unusable"
    finally:
        await other.close()


async def _set_policy(services: Services, policy: str) -> None:
    from streamzy.storage import system_state
    async with services.db.unit() as db:
        await system_state.write(db, system_state.SECOND_FACTOR_POLICY, policy,
                                 services.clock.now())


async def test_the_last_factor_stays_while_the_policy_requires_one(services: Services) -> None:
    # Else a live session could drop below the policy and keep chatting on open sockets.
    user = await _user(services)
    secret, _ = await enrol(services, user)
    await _set_policy(services, "everyone")
    with pytest.raises(Forbidden) as refused:
        await services.second_factors.disable_totp(user.id, TEST_PASSWORD,
                                                   code_at(secret, services.clock), CLIENT)
    assert refused.value.code == "factor_required"
    assert await _flag(services, user.id)  # rolled back: the app is still on
    services.clock.advance(30)
    await _set_policy(services, "off")
    await services.second_factors.disable_totp(user.id, TEST_PASSWORD,
                                               code_at(secret, services.clock), CLIENT)
    assert not await _flag(services, user.id)


async def test_granting_admin_under_the_admins_policy_ends_a_factorless_session(
        services: Services) -> None:
    boss = await make_user(services, "boss", admin=True)
    bob = await _user(services, "bob")
    await services.sessions.issue(bob.id, CLIENT)
    await _set_policy(services, "admins")
    await services.accounts.set_admin(boss.id, bob.id, True, CLIENT)
    assert await services.sessions.list_for_user(bob.id) == []
