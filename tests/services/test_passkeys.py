"""Passkeys (issue 16, item 2) against the service, with a software authenticator: every
check that makes an answer count (challenge, origin, RP id, counter, owner, expiry) and the
lockout that wrong answers feed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, update

from streamzy.clock import ManualClock
from streamzy.services.errors import Invalid, NotFound
from streamzy.services.passkey_checks import RelyingParty
from streamzy.services.sign_in_challenges import SECOND_FACTOR
from streamzy.storage.models import SignInChallenge, User, WebAuthnCredential
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user
from tests.passkey_authenticator import SoftAuthenticator

ORIGIN = "https://chat.example.org"
RP = RelyingParty("chat.example.org", "Streamzy", ORIGIN)


def detail(row: Any) -> dict[str, Any]:
    return dict(json.loads(row.detail))


def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id=RP.id)


async def signed_in(services: Services, name: str) -> tuple[int, int]:
    user = await make_user(services, name)
    _, session_id = await services.sessions.issue(user.id, CLIENT)
    return user.id, session_id


async def enrol(services: Services, user_id: int, session_id: int,
                device: SoftAuthenticator, name: str = "Laptop") -> int:
    ceremony = await services.passkeys.start_registration(user_id, session_id, RP, CLIENT)
    answer = device.create(json.loads(ceremony.options))
    passkey = await services.passkeys.finish_registration(ceremony.token, user_id, session_id,
                                                          answer, name, RP, CLIENT)
    return passkey.id


async def user_row(services: Services, user_id: int) -> User:
    row = await services.accounts.get(user_id)
    assert row is not None
    return row


async def sign_in(services: Services, device: SoftAuthenticator,
                  **bend: Any) -> Any:
    ceremony = await services.passkeys.start_sign_in(RP, CLIENT)
    return await services.passkeys.finish_sign_in(
        ceremony.token, device.get(json.loads(ceremony.options), **bend), RP, CLIENT)


async def half_signed_in(services: Services, user_id: int) -> str:
    """What the password step leaves: a SECOND_FACTOR challenge for ``user_id``."""
    return await services.challenges.start(SECOND_FACTOR, CLIENT, user_id=user_id)


async def test_registration_stores_the_key_and_sets_the_flag(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    ceremony = await services.passkeys.start_registration(user_id, session_id, RP, CLIENT)
    options = json.loads(ceremony.options)
    assert options["rp"] == {"id": RP.id, "name": "Streamzy"}
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["user"]["name"] == "alice" and options["excludeCredentials"] == []
    device = authenticator()
    answer = device.create(options)
    passkey = await services.passkeys.finish_registration(
        ceremony.token, user_id, session_id, answer, "  My <b>laptop</b> ", RP, CLIENT)
    assert passkey.name == "My <b>laptop</b>"  # kept as typed; templates escape it
    assert (await user_row(services, user_id)).has_second_factor
    async with services.db.unit() as db:
        row = (await db.execute(select(WebAuthnCredential))).scalar_one()
    assert row.credential_id == device.id and row.transports == "hybrid,internal"
    enrolled = await audit_rows(services, "second_factor_enrolled")
    assert detail(enrolled[-1])["method"] == "passkey"
    # The next registration excludes it (no second copy on the same authenticator).
    again = json.loads((await services.passkeys.start_registration(
        user_id, session_id, RP, CLIENT)).options)
    assert [c["id"] for c in again["excludeCredentials"]] == [device.id]


async def test_registration_challenge_is_single_use_and_bound_to_the_session(
        services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    _, other_session = await services.sessions.issue(user_id, CLIENT)
    ceremony = await services.passkeys.start_registration(user_id, session_id, RP, CLIENT)
    answer = authenticator().create(json.loads(ceremony.options))
    with pytest.raises(Invalid) as refused:  # another session cannot finish it
        await services.passkeys.finish_registration(ceremony.token, user_id, other_session,
                                                    answer, "x", RP, CLIENT)
    assert refused.value.code == "no_challenge"
    await services.passkeys.finish_registration(ceremony.token, user_id, session_id, answer,
                                                "x", RP, CLIENT)
    with pytest.raises(Invalid):  # replayed
        await services.passkeys.finish_registration(ceremony.token, user_id, session_id,
                                                    answer, "x", RP, CLIENT)


@pytest.mark.parametrize("bend", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}])
async def test_registration_refuses_wrong_origin_or_rp(services: Services,
                                                       bend: dict[str, str]) -> None:
    user_id, session_id = await signed_in(services, "alice")
    ceremony = await services.passkeys.start_registration(user_id, session_id, RP, CLIENT)
    answer = authenticator().create(json.loads(ceremony.options), **bend)
    with pytest.raises(Invalid) as refused:
        await services.passkeys.finish_registration(ceremony.token, user_id, session_id,
                                                    answer, "x", RP, CLIENT)
    assert refused.value.code == "passkey_refused"
    assert not (await user_row(services, user_id)).has_second_factor
    failed = await audit_rows(services, "second_factor_failed")
    assert detail(failed[-1])["context"] == "enrol"
    assert detail(failed[-1])["reason"] in ("wrong_origin", "wrong_rp_id")


@pytest.mark.parametrize("name", ["a\u0000b", "x" * 65, "left\u202eright", "two\nlines"])
async def test_registration_refuses_bad_names(services: Services, name: str) -> None:
    user_id, session_id = await signed_in(services, "alice")
    ceremony = await services.passkeys.start_registration(user_id, session_id, RP, CLIENT)
    answer = authenticator().create(json.loads(ceremony.options))
    with pytest.raises(Invalid) as refused:
        await services.passkeys.finish_registration(ceremony.token, user_id, session_id,
                                                    answer, name, RP, CLIENT)
    assert refused.value.code == "invalid_name"


async def test_sign_in_without_username(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    ceremony = await services.passkeys.start_sign_in(RP, CLIENT)
    options = json.loads(ceremony.options)
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    outcome = await services.passkeys.finish_sign_in(ceremony.token, device.get(options), RP,
                                                     CLIENT)
    assert outcome.ok and outcome.user_id == user_id and not outcome.must_change_password
    succeeded = await audit_rows(services, "login_succeeded")
    assert detail(succeeded[-1]) == {"method": "passkey", "step": "passkey"}
    async with services.db.unit() as db:
        row = (await db.execute(select(WebAuthnCredential))).scalar_one()
    assert row.sign_count == 1 and row.last_used_at is not None
    # The same answer again: the challenge is gone.
    replay = await services.passkeys.finish_sign_in(ceremony.token, device.get(options), RP,
                                                    CLIENT)
    assert not replay.ok and replay.reason == "no_challenge"


async def test_a_passkey_sign_in_forgets_earlier_wrong_guesses(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    for _ in range(3):
        await services.accounts.record_failure(user_id)
    outcome = await sign_in(services, device)
    assert outcome.ok
    async with services.db.unit() as db:
        user = await db.get(User, user_id)
    # Like a right password: the next few wrong guesses do not lock the owner out.
    assert user is not None and user.failed_logins == 0


async def test_sign_in_needs_user_verification(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    outcome = await sign_in(services, device, verified=False)
    assert not outcome.ok and outcome.reason == "not_verified"


@pytest.mark.parametrize(("bend", "reason"), [
    ({"origin": "https://evil.example"}, "wrong_origin"),
    ({"origin": "http://chat.example.org"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"challenge": "AAAAAAAAAAAAAAAAAAAAAA"}, "wrong_challenge"),
])
async def test_sign_in_refuses_bent_answers(services: Services, bend: dict[str, str],
                                            reason: str) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    outcome = await sign_in(services, device, **bend)
    assert not outcome.ok and outcome.reason == reason
    failed = (await audit_rows(services, "second_factor_failed"))[-1]
    assert failed.user_id == user_id
    assert detail(failed)["reason"] == reason and detail(failed)["method"] == "passkey"
    assert detail(failed)["failures"] == 1  # counted toward the lockout


async def test_counter_regression_is_refused_and_audited(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    assert (await sign_in(services, device, count=5)).ok
    cloned = await sign_in(services, device, count=5)
    assert not cloned.ok and cloned.reason == "counter_regressed"
    assert not (await sign_in(services, device, count=3)).ok
    assert (await sign_in(services, device, count=6)).ok
    # An authenticator that does not count (reports 0) is accepted.
    assert (await sign_in(services, device, count=0)).ok
    reasons = [detail(r)["reason"] for r in await audit_rows(services, "second_factor_failed")]
    assert reasons == ["counter_regressed", "counter_regressed"]


async def test_unknown_credential_and_disabled_account(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    stranger = await sign_in(services, authenticator())
    assert not stranger.ok and stranger.reason == "unknown_credential"
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == user_id).values(is_active=False))
    disabled = await sign_in(services, device)
    assert not disabled.ok and disabled.reason == "disabled"


async def test_must_change_password_is_reported(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    async with services.db.unit() as db:
        await db.execute(update(User).where(User.id == user_id)
                         .values(must_change_password=True))
    outcome = await sign_in(services, device)
    assert outcome.ok and outcome.must_change_password


async def test_sign_in_challenge_expires(services: Services, clock: ManualClock) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    ceremony = await services.passkeys.start_sign_in(RP, CLIENT)
    clock.advance(services.settings.second_factor_seconds + 1)
    outcome = await services.passkeys.finish_sign_in(
        ceremony.token, device.get(json.loads(ceremony.options)), RP, CLIENT)
    assert not outcome.ok and outcome.reason == "no_challenge"


async def test_second_factor_allows_only_that_accounts_passkeys(services: Services) -> None:
    alice, alice_session = await signed_in(services, "alice")
    bob, bob_session = await signed_in(services, "bob")
    alice_key, bob_key = authenticator(), authenticator()
    await enrol(services, alice, alice_session, alice_key)
    await enrol(services, bob, bob_session, bob_key)
    token = await half_signed_in(services, alice)
    ceremony = await services.passkeys.start_second_factor(token, RP)
    options = json.loads(ceremony.options)
    assert [c["id"] for c in options["allowCredentials"]] == [alice_key.id]
    assert options["userVerification"] == "preferred"
    # Bob's (valid, signed) passkey does not complete Alice's sign-in.
    foreign = await services.passkeys.finish_second_factor(token, bob_key.get(options), RP,
                                                           CLIENT)
    assert not foreign.ok and foreign.reason == "foreign_credential"
    failed = (await audit_rows(services, "second_factor_failed"))[-1]
    assert failed.user_id == alice and detail(failed)["context"] == "sign_in"
    # The challenge was spent by that answer: a new one is needed.
    stale = await services.passkeys.finish_second_factor(token, alice_key.get(options), RP,
                                                         CLIENT)
    assert not stale.ok and stale.reason == "no_challenge"
    options = json.loads((await services.passkeys.start_second_factor(token, RP)).options)
    passed = await services.passkeys.finish_second_factor(token, alice_key.get(options), RP,
                                                          CLIENT)
    assert passed.ok and passed.user_id == alice
    assert await services.challenges.find(token, SECOND_FACTOR) is None  # used up
    # A user verification flag is not needed after the password.
    token = await half_signed_in(services, alice)
    options = json.loads((await services.passkeys.start_second_factor(token, RP)).options)
    assert (await services.passkeys.finish_second_factor(
        token, alice_key.get(options, verified=False), RP, CLIENT)).ok


async def test_second_factor_step_expires(services: Services, clock: ManualClock) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    token = await half_signed_in(services, user_id)
    options = json.loads((await services.passkeys.start_second_factor(token, RP)).options)
    clock.advance(services.settings.second_factor_seconds + 1)
    outcome = await services.passkeys.finish_second_factor(token, device.get(options), RP,
                                                           CLIENT)
    assert not outcome.ok and outcome.reason == "no_challenge"


async def test_wrong_answers_lock_the_account_and_end_the_step(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    token = await half_signed_in(services, user_id)
    threshold = services.accounts.policy.lockout_threshold
    for attempt in range(threshold):
        options = json.loads((await services.passkeys.start_second_factor(token, RP)).options)
        outcome = await services.passkeys.finish_second_factor(
            token, device.get(options, origin="https://evil.example"), RP, CLIENT)
        assert not outcome.ok and outcome.locked == (attempt == threshold - 1)
    assert services.accounts.is_locked(await user_row(services, user_id))
    assert len(await audit_rows(services, "account_locked")) == 1
    async with services.db.unit() as db:  # the half-signed-in step ended with the lockout
        assert (await db.execute(select(SignInChallenge).where(
            SignInChallenge.purpose == SECOND_FACTOR))).first() is None
    # While locked, even a right passkey signs nobody in.
    locked = await sign_in(services, device)
    assert not locked.ok and locked.reason == "locked"


async def test_step_up_with_a_passkey(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    ceremony = await services.passkeys.start_step_up(user_id, session_id, RP, CLIENT)
    options = json.loads(ceremony.options)
    assert options["userVerification"] == "required"
    _, other_session = await services.sessions.issue(user_id, CLIENT)
    elsewhere = await services.passkeys.finish_step_up(ceremony.token, user_id, other_session,
                                                       device.get(options), RP, CLIENT)
    assert not elsewhere.ok and elsewhere.reason == "no_challenge"
    ceremony = await services.passkeys.start_step_up(user_id, session_id, RP, CLIENT)
    options = json.loads(ceremony.options)
    passed = await services.passkeys.finish_step_up(ceremony.token, user_id, session_id,
                                                    device.get(options), RP, CLIENT)
    assert passed.ok
    assert detail((await audit_rows(services, "step_up_passed"))[-1]) == {"method": "passkey"}
    ceremony = await services.passkeys.start_step_up(user_id, session_id, RP, CLIENT)
    failed = await services.passkeys.finish_step_up(
        ceremony.token, user_id, session_id,
        device.get(json.loads(ceremony.options), verified=False), RP, CLIENT)
    assert not failed.ok and failed.reason == "not_verified"
    assert detail((await audit_rows(services, "step_up_failed"))[-1])["reason"] == "not_verified"


async def test_remove_clears_the_flag_and_is_audited(services: Services) -> None:
    user_id, session_id = await signed_in(services, "alice")
    bob, _ = await signed_in(services, "bob")
    passkey_id = await enrol(services, user_id, session_id, authenticator())
    with pytest.raises(NotFound):  # not Bob's to remove
        await services.passkeys.remove(bob, passkey_id, CLIENT)
    await services.passkeys.remove(user_id, passkey_id, CLIENT)
    assert await services.passkeys.list_for_user(user_id) == []
    assert not (await user_row(services, user_id)).has_second_factor
    removed = await audit_rows(services, "second_factor_removed")
    assert removed[-1].user_id == user_id and detail(removed[-1])["method"] == "passkey"


@pytest.mark.parametrize("garbage", [
    {}, {"id": 5}, {"id": "A" * 40, "rawId": "A" * 40, "type": "public-key",
                    "response": {"clientDataJSON": "!!", "authenticatorData": "x",
                                 "signature": []}},
    {"id": "A" * 40, "rawId": "A" * 40, "type": "public-key", "response": "nope"},
])
async def test_malformed_answers_are_refusals(services: Services,
                                              garbage: dict[str, Any]) -> None:
    user_id, session_id = await signed_in(services, "alice")
    device = authenticator()
    await enrol(services, user_id, session_id, device)
    ceremony = await services.passkeys.start_sign_in(RP, CLIENT)
    if "id" in garbage and isinstance(garbage["id"], str):
        garbage = {**garbage, "id": device.id, "rawId": device.id}
    outcome = await services.passkeys.finish_sign_in(ceremony.token, garbage, RP, CLIENT)
    assert not outcome.ok
