"""Passkeys (WebAuthn): enrolment by a signed-in person, and three ways of answering with one:
as the second factor after the password, as the sign-in itself (no username, no password),
and as step-up re-authentication.

Every ceremony's challenge lives in a ``SignInChallenges`` row (its token in the challenge
cookie, never in a session), is taken as it is answered (single use) and expires with the
row. The checks themselves are in ``passkey_checks.py``. Failures where the account is
known count toward the same lockout as wrong passwords.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from webauthn.helpers import bytes_to_base64url

from streamzy.clock import Clock, as_utc
from streamzy.services import passkey_checks as checks
from streamzy.services.accounts import Accounts
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.factor_flags import keep_one_if_required, sync_second_factor
from streamzy.services.passkey_checks import CheckFailed, RelyingParty
from streamzy.services.sign_in_challenges import (
    PASSKEY_REGISTER,
    PASSKEY_SIGN_IN,
    SECOND_FACTOR,
    STEP_UP,
    Challenge,
    SignInChallenges,
)
from streamzy.storage.db import Database
from streamzy.storage.models import WebAuthnCredential

Audit = Callable[..., Awaitable[None]]
CHALLENGE_BYTES = 32
MAX_PASSKEYS = 20  # per account: enough for every device anyone owns


@dataclass(frozen=True)
class Passkey:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    transports: str


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser, and the token of a new challenge row (None when the row
    already existed, e.g. the half-signed-in one)."""

    options: str
    token: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How an answer went. ``user_id`` is who signed in (or proved themselves) when ok."""

    ok: bool
    reason: str
    user_id: int | None = None
    must_change_password: bool = False
    locked: bool = False  # this refusal (or an earlier one) locked the account


class Passkeys:
    def __init__(self, db: Database, clock: Clock, challenges: SignInChallenges,
                 accounts: Accounts, audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._challenges = challenges
        self._accounts = accounts
        self._audit = audit

    # -- the account's passkeys -----------------------------------------------------------
    async def list_for_user(self, user_id: int) -> list[Passkey]:
        async with self._db.unit() as db:
            rows = (await db.execute(select(WebAuthnCredential).where(
                WebAuthnCredential.user_id == user_id).order_by(WebAuthnCredential.id))).scalars()
            return [Passkey(r.id, r.name, as_utc(r.created_at),
                            as_utc(r.last_used_at) if r.last_used_at else None, r.transports)
                    for r in rows]

    async def _credentials(self, user_id: int) -> dict[str, str]:
        """credential id -> transports, for allow/exclude lists."""
        async with self._db.unit() as db:
            rows = await db.execute(select(WebAuthnCredential.credential_id,
                                           WebAuthnCredential.transports)
                                    .where(WebAuthnCredential.user_id == user_id))
            return {cid: transports for cid, transports in rows}

    async def start_registration(self, user_id: int, session_id: int, rp: RelyingParty,
                                 info: Any) -> Ceremony:
        user = await self._accounts.get(user_id)
        if user is None or not user.is_active or user.is_bot:
            raise NotFound("no_user", "No such account.")
        existing = await self._credentials(user_id)
        if len(existing) >= MAX_PASSKEYS:
            raise Conflict("too_many_passkeys", f"An account can hold {MAX_PASSKEYS} passkeys.")
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        token = await self._challenges.start(PASSKEY_REGISTER, info, user_id=user_id,
                                             session_id=session_id, challenge=challenge)
        options = checks.registration_options(rp, user_id, user.username, user.display_name,
                                              challenge, existing)
        return Ceremony(options, token)

    async def finish_registration(self, token: str | None, user_id: int, session_id: int,
                                  credential: dict[str, Any], raw_name: str,
                                  rp: RelyingParty, info: Any) -> Passkey:
        """Store the new passkey (and the account's second-factor flag with it); raises
        Invalid/Conflict with a stable code when refused."""
        try:
            name = checks.clean_name(raw_name)
        except ValueError:
            raise Invalid("invalid_name", "Give the passkey a name of up to 64 characters "
                          "without control characters.") from None
        row = await self._challenges.find(token, PASSKEY_REGISTER)
        if row is None or row.session_id != session_id or row.user_id != user_id:
            await self._failed(user_id, "no_challenge", "enrol", info, count=False)
            raise Invalid("no_challenge", "This passkey request expired. Try again.")
        challenge = await self._challenges.take_challenge(row.id)
        if not await self._challenges.finish(row.id):
            challenge = None  # a racing answer finished it first
        if challenge is None:
            await self._failed(user_id, "no_challenge", "enrol", info, count=False)
            raise Invalid("no_challenge", "This passkey request expired. Try again.")
        try:
            new = await checks.verify_new(rp, challenge, credential)
        except CheckFailed as exc:
            await self._failed(user_id, exc.reason, "enrol", info, count=False)
            raise Invalid("passkey_refused", "The passkey could not be verified.") from None
        now = self._clock.now()
        record = WebAuthnCredential(user_id=user_id, credential_id=new.credential_id,
                                    public_key=new.public_key, sign_count=new.sign_count,
                                    transports=new.transports, name=name, created_at=now)
        try:
            async with self._db.unit() as db:
                db.add(record)
                await db.flush()
                await sync_second_factor(db, user_id)
        except IntegrityError:
            raise Conflict("passkey_exists", "That passkey is already registered.") from None
        await self._audit("second_factor_enrolled", info, user_id, method="passkey",
                          passkey_id=record.id)
        return Passkey(record.id, name, now, None, new.transports)

    async def remove(self, user_id: int, passkey_id: int, info: Any) -> None:
        """Delete one of the account's passkeys (the route wants a recent step-up)."""
        async with self._db.unit() as db:
            result = await db.execute(delete(WebAuthnCredential).where(
                WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user_id))
            if not result.rowcount:
                raise NotFound("no_passkey", "No such passkey.")
            await keep_one_if_required(db, user_id)
        await self._audit("second_factor_removed", info, user_id, method="passkey",
                          passkey_id=passkey_id)

    # -- answering with a passkey ----------------------------------------------------------
    async def start_sign_in(self, rp: RelyingParty, info: Any) -> Ceremony:
        """Sign in with a discoverable passkey: no username, so no allow list; the user is
        known from the credential. User verification is required: it replaces the password."""
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        token = await self._challenges.start(PASSKEY_SIGN_IN, info, challenge=challenge)
        return Ceremony(checks.authentication_options(rp, challenge, {}, verify_user=True), token)

    async def finish_sign_in(self, token: str | None, credential: dict[str, Any],
                             rp: RelyingParty, info: Any) -> Outcome:
        row = await self._challenges.find(token, PASSKEY_SIGN_IN)
        challenge = await self._take(row)
        if row is None or challenge is None:
            return await self._refused(None, "no_challenge", "passkey_sign_in", info)
        if not await self._challenges.finish(row.id):  # a racing answer finished it first
            return await self._refused(None, "no_challenge", "passkey_sign_in", info)
        stored = await self._stored(credential)
        if stored is None:
            return await self._refused(None, "unknown_credential", "passkey_sign_in", info)
        handle = checks.user_handle_of(credential)
        if handle is not None and handle != bytes_to_base64url(checks.user_handle(stored.user_id)):
            return await self._refused(stored.user_id, "wrong_user_handle", "passkey_sign_in",
                                       info)
        return await self._answer(stored, challenge, credential, rp, info,
                                  context="passkey_sign_in", verify_user=True)

    async def start_second_factor(self, token: str | None, rp: RelyingParty) -> Ceremony:
        """The half-signed-in step: a WebAuthn challenge on its SECOND_FACTOR row, allowing
        only that account's passkeys."""
        row = await self._challenges.find(token, SECOND_FACTOR)
        if row is None or row.user_id is None:
            raise Forbidden("no_challenge", "Sign in again: this step expired.")
        allowed = await self._credentials(row.user_id)
        if not allowed:
            raise Conflict("no_passkey", "This account has no passkey.")
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        await self._challenges.set_challenge(row.id, challenge)
        return Ceremony(checks.authentication_options(rp, challenge, allowed, verify_user=False))

    async def finish_second_factor(self, token: str | None, credential: dict[str, Any],
                                   rp: RelyingParty, info: Any) -> Outcome:
        row = await self._challenges.find(token, SECOND_FACTOR)
        if row is None or row.user_id is None:
            return await self._refused(None, "no_challenge", "sign_in", info)
        challenge = await self._take(row)
        if challenge is None:
            return await self._refused(row.user_id, "no_challenge", "sign_in", info)
        stored = await self._stored(credential)
        if stored is None or stored.user_id != row.user_id:
            outcome = await self._refused(row.user_id, "foreign_credential", "sign_in", info,
                                          count=True)
        else:
            outcome = await self._answer(stored, challenge, credential, rp, info,
                                         context="sign_in", verify_user=False)
        if not outcome.ok:
            await self._challenges.attempt(row.id)
            if outcome.locked:  # half-signed-in ends with the lockout
                await self._challenges.finish(row.id)
            return outcome
        if not await self._challenges.finish(row.id):  # a racing answer passed first
            return await self._refused(row.user_id, "no_challenge", "sign_in", info)
        return outcome

    async def start_step_up(self, user_id: int, session_id: int, rp: RelyingParty,
                            info: Any) -> Ceremony:
        allowed = await self._credentials(user_id)
        if not allowed:
            raise Conflict("no_passkey", "This account has no passkey.")
        challenge = secrets.token_bytes(CHALLENGE_BYTES)
        token = await self._challenges.start(STEP_UP, info, user_id=user_id,
                                             session_id=session_id, challenge=challenge)
        return Ceremony(checks.authentication_options(rp, challenge, allowed, verify_user=True),
                        token)

    async def finish_step_up(self, token: str | None, user_id: int, session_id: int,
                             credential: dict[str, Any], rp: RelyingParty,
                             info: Any) -> Outcome:
        """Re-authentication with a passkey (user verification required: the person, not
        only the device the session is already on). The caller records it on the session."""
        row = await self._challenges.find(token, STEP_UP)
        if row is None or row.session_id != session_id or row.user_id != user_id:
            return await self._refused(user_id, "no_challenge", "step_up", info)
        challenge = await self._take(row)
        if not await self._challenges.finish(row.id):
            challenge = None  # a racing answer finished it first
        if challenge is None:
            return await self._refused(user_id, "no_challenge", "step_up", info)
        stored = await self._stored(credential)
        if stored is None or stored.user_id != user_id:
            return await self._refused(user_id, "foreign_credential", "step_up", info,
                                       count=True)
        outcome = await self._answer(stored, challenge, credential, rp, info, context="step_up",
                                     verify_user=True)
        if outcome.ok:
            await self._audit("step_up_passed", info, user_id, method="passkey")
        return outcome

    # -- shared steps ------------------------------------------------------------------------
    async def _take(self, row: Challenge | None) -> bytes | None:
        return None if row is None else await self._challenges.take_challenge(row.id)

    async def _stored(self, credential: dict[str, Any]) -> WebAuthnCredential | None:
        credential_id = checks.credential_id_of(credential)
        if credential_id is None:
            return None
        async with self._db.unit() as db:
            return (await db.execute(select(WebAuthnCredential).where(
                WebAuthnCredential.credential_id == credential_id))).scalar_one_or_none()

    async def _answer(self, stored: WebAuthnCredential, challenge: bytes,
                      credential: dict[str, Any], rp: RelyingParty, info: Any, *,
                      context: str, verify_user: bool) -> Outcome:
        """Verify an assertion by ``stored``'s key, then the account's state."""
        user = await self._accounts.get(stored.user_id)
        if user is None or user.is_bot or user.erased_at is not None:
            return await self._refused(stored.user_id, "no_user", context, info)
        if self._accounts.is_locked(user):
            return await self._refused(user.id, "locked", context, info)
        try:
            assertion = await checks.verify_assertion(
                rp, challenge, credential, public_key=stored.public_key,
                stored_count=stored.sign_count, verify_user=verify_user)
        except CheckFailed as exc:
            return await self._refused(user.id, exc.reason, context, info, count=True,
                                       passkey_id=stored.id)
        if not user.is_active:  # after the proof, like the password path: no oracle
            return await self._refused(user.id, "disabled", context, info)
        expired = (user.must_change_password and user.password_expires_at is not None
                   and as_utc(user.password_expires_at) <= self._clock.now())
        if expired and context != "step_up":
            return await self._refused(user.id, "expired_one_time_password", context, info)
        await self._used(stored.id, assertion.sign_count)
        await self._accounts.clear_failures(user)  # a full proof: earlier guesses forgotten
        if context != "step_up":
            await self._audit("login_succeeded", info, user.id, method="passkey",
                              step="second_factor" if context == "sign_in" else "passkey")
        return Outcome(True, "ok", user.id, bool(user.must_change_password))

    async def _used(self, passkey_id: int, sign_count: int) -> None:
        values: dict[str, Any] = {"last_used_at": self._clock.now()}
        if sign_count:
            values["sign_count"] = sign_count
        async with self._db.unit() as db:
            await db.execute(update(WebAuthnCredential)
                             .where(WebAuthnCredential.id == passkey_id).values(**values))

    async def _refused(self, user_id: int | None, reason: str, context: str, info: Any, *,
                       count: bool = False, **detail: Any) -> Outcome:
        locked = await self._failed(user_id, reason, context, info, count=count, **detail)
        return Outcome(False, reason, user_id, locked=locked or reason == "locked")

    async def _failed(self, user_id: int | None, reason: str, context: str, info: Any, *,
                      count: bool, **detail: Any) -> bool:
        """Audit one refused answer; a wrong answer for a known account counts toward its
        lockout (a missing or stale challenge does not: that is a reload, not a guess)."""
        event = "step_up_failed" if context == "step_up" else "second_factor_failed"
        failures: dict[str, Any] = {}
        locked = False
        if count and user_id is not None:
            failures["failures"], locked = await self._accounts.record_failure(user_id)
        await self._audit(event, info, user_id, method="passkey", reason=reason,
                          context=context, **failures, **detail)
        if locked:
            await self._audit("account_locked", info, user_id,
                              seconds=self._accounts.policy.lockout_seconds, via="passkey")
        return locked

