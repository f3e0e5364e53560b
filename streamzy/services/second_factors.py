"""The second factor by code: a TOTP authenticator app (RFC 6238) and recovery codes.

* The TOTP secret (160 random bits, base32) is sealed under the master keys
  (storage/secret_box.py, purpose "totp", bound to its owner) and recorded with the id of
  the master key that sealed it, so ``rotate-keys`` re-seals it and ``retire-key`` counts it.
* Enrolment writes an unconfirmed row; the first correct code confirms it, turns the
  account's ``has_second_factor`` on and issues ten recovery codes (shown once).
* A code is accepted for the current 30-second step and one step either side, and only
  for a step later than the last one accepted: the step is stored by a conditional UPDATE,
  so a code (or an older one) is never accepted twice, not even by two racing requests.
* Wrong codes count toward the same lockout as wrong passwords (Accounts.record_failure);
  while the account is locked every code is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pyotp
from sqlalchemy import delete, func, select, update

from streamzy.clock import Clock
from streamzy.services.accounts import Accounts
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.factor_flags import keep_one_if_required, sync_second_factor
from streamzy.services.passwords import PasswordHasher
from streamzy.services.recovery_codes import code_hash, new_codes, read_code
from streamzy.storage.db import Database
from streamzy.storage.models import RecoveryCode, TotpCredential, User, WebAuthnCredential
from streamzy.storage.secret_box import SecretBox

Audit = Callable[..., Awaitable[None]]
# (user_id, reason, keep_session_id) -> sessions ended
EndSessions = Callable[[int, str, int | None], Awaitable[int]]
PURPOSE = "totp"
ISSUER = "Streamzy"
WINDOW = 1  # steps accepted either side of the current one (clock drift, slow typing)


@dataclass(frozen=True)
class CodeOutcome:
    ok: bool
    method: str  # "totp" | "recovery" | ""
    reason: str  # ok, wrong_code, replayed, locked, malformed, no_factor


@dataclass(frozen=True)
class FactorStatus:
    totp: bool  # a confirmed authenticator app
    recovery_codes_left: int
    passkeys: int
    totp_pending: bool = False  # enrolment started, not confirmed yet


@dataclass(frozen=True)
class Enrolment:
    """An unconfirmed TOTP secret, for the QR code and for typing it in by hand."""

    secret: str  # base32
    uri: str  # otpauth://totp/...


def _matching_step(secret: str, code: str, now: Any) -> int | None:
    """The step in the window whose code is ``code`` (every candidate compared, in
    constant time), or None."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


class SecondFactors:
    def __init__(self, db: Database, clock: Clock, box: SecretBox, accounts: Accounts,
                 hasher: PasswordHasher, audit: Audit, end_sessions: EndSessions, *,
                 recovery_key: bytes) -> None:
        self._db = db
        self._clock = clock
        self._box = box
        self._accounts = accounts
        self._hasher = hasher
        self._audit = audit
        self._end_sessions = end_sessions
        self._recovery_key = recovery_key

    # -- enrolment ------------------------------------------------------------------------

    async def begin_totp(self, user_id: int, username: str, info: Any) -> Enrolment:
        """A fresh secret in an unconfirmed row (replacing an earlier unconfirmed one)."""
        secret = pyotp.random_base32()  # 32 base32 characters: 160 bits
        sealed = self._box.seal(PURPOSE, user_id, secret.encode("ascii"))
        async with self._db.unit() as db:
            row = await db.get(TotpCredential, user_id, with_for_update=True)
            if row is not None and row.confirmed_at is not None:
                raise Conflict("totp_exists", "An authenticator app is already set up. "
                               "Turn it off first to set up another.")
            if row is None:
                db.add(TotpCredential(user_id=user_id, secret=sealed,
                                      master_key_id=self._box.newest_id, last_step=0,
                                      created_at=self._clock.now()))
            else:
                row.secret, row.master_key_id = sealed, self._box.newest_id
                row.last_step, row.created_at = 0, self._clock.now()
        await self._audit("second_factor_enrolment_started", info, user_id, method="totp")
        return self._enrolment(secret, username)

    @staticmethod
    def _enrolment(secret: str, username: str) -> Enrolment:
        return Enrolment(secret, pyotp.TOTP(secret).provisioning_uri(name=username,
                                                                     issuer_name=ISSUER))

    async def pending_totp(self, user_id: int, username: str) -> Enrolment | None:
        """The unconfirmed secret being set up (None: none, or its key is gone)."""
        async with self._db.unit() as db:
            row = await db.get(TotpCredential, user_id)
            if row is None or row.confirmed_at is not None:
                return None
            sealed = bytes(row.secret)
        secret = self._box.open(PURPOSE, user_id, sealed)
        return None if secret is None else self._enrolment(secret.decode("ascii"), username)

    async def confirm_totp(self, user_id: int, code: str, info: Any) -> list[str]:
        """The first correct code turns the app on; returns ten new recovery codes (the
        only time they exist in clear). A wrong code here is a typo against a secret this
        session just made: audited, not counted toward the lockout (rate limited)."""
        kind, code = read_code(code)
        async with self._db.unit() as db:
            row = await db.get(TotpCredential, user_id, with_for_update=True)
            if row is None or row.confirmed_at is not None:
                raise Conflict("no_enrolment", "Start setting up the app first.")
            secret = self._box.open(PURPOSE, user_id, bytes(row.secret))
            step = (None if kind != "totp" or secret is None
                    else _matching_step(secret.decode("ascii"), code, self._clock.now()))
            if step is not None:
                row.confirmed_at, row.last_step = self._clock.now(), step
                await db.flush()
                await sync_second_factor(db, user_id)
                codes = await self._replace_codes(db, user_id)
        if step is None:
            reason = "malformed" if kind != "totp" else "wrong_code"
            await self._audit("second_factor_failed", info, user_id, method="totp",
                              reason=reason, context="enrol")
            raise Invalid(reason, "That code is not right. Check the time on your device and "
                          "type the code the app shows now.")
        await self._audit("second_factor_enrolled", info, user_id, method="totp")
        return codes

    async def _replace_codes(self, db: Any, user_id: int) -> list[str]:
        codes = new_codes()
        now = self._clock.now()
        await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        db.add_all([RecoveryCode(user_id=user_id, code_hash=code_hash(self._recovery_key,
                                                                      user_id, c),
                                 created_at=now) for c in codes])
        return codes

    # -- checking a code ------------------------------------------------------------------

    async def check_code(self, user_id: int, code: str, info: Any, *,
                         purpose: str) -> CodeOutcome:
        """Check a TOTP or recovery code for ``purpose`` (sign_in, step_up, disable,
        regenerate). Audits a failure, counts a wrong code toward the lockout, refuses
        while locked; a pass clears earlier failures."""
        outcome = await self._check(user_id, code, info, purpose)
        if not outcome.ok:
            await self._audit("second_factor_failed", info, user_id,
                              method=outcome.method or "code", reason=outcome.reason,
                              context=purpose)
        return outcome

    async def _check(self, user_id: int, text: str, info: Any, purpose: str) -> CodeOutcome:
        kind, code = read_code(text)
        user = await self._accounts.get(user_id)
        if user is None or not user.is_active:
            return CodeOutcome(False, "", "no_factor")
        if self._accounts.is_locked(user):
            return CodeOutcome(False, "", "locked")
        if kind == "malformed":
            return CodeOutcome(False, "", "malformed")
        if kind == "totp":
            outcome = await self._check_totp(user_id, code)
        else:
            outcome = await self._use_recovery(user_id, code, info)
        if outcome.reason == "wrong_code":
            return await self._wrong(user_id, outcome, info, purpose)
        if outcome.ok:
            await self._accounts.clear_failures(user)
        return outcome

    async def _wrong(self, user_id: int, outcome: CodeOutcome, info: Any,
                     purpose: str) -> CodeOutcome:
        failures, locked = await self._accounts.record_failure(user_id)
        if not locked:
            return outcome
        # Signed-in callers (step-up, disable) lose their sessions with the lock, like a
        # wrong current password does: a stolen session is no unlimited code oracle.
        ended = 0 if purpose == "sign_in" else await self._end_sessions(user_id, "locked", None)
        await self._audit("account_locked", info, user_id, seconds=self._accounts.policy
                          .lockout_seconds, via="second_factor", failures=failures,
                          sessions_ended=ended)
        return CodeOutcome(False, outcome.method, "locked")

    async def _check_totp(self, user_id: int, code: str) -> CodeOutcome:
        async with self._db.unit() as db:
            row = await db.get(TotpCredential, user_id)
            if row is None or row.confirmed_at is None:
                return CodeOutcome(False, "totp", "no_factor")
            sealed, last = bytes(row.secret), int(row.last_step)
        secret = self._box.open(PURPOSE, user_id, sealed)
        if secret is None:  # no configured master key opens it (see key_health)
            return CodeOutcome(False, "totp", "no_factor")
        step = _matching_step(secret.decode("ascii"), code, self._clock.now())
        if step is None:
            return CodeOutcome(False, "totp", "wrong_code")
        if step <= last:
            return CodeOutcome(False, "totp", "replayed")
        async with self._db.unit() as db:  # only one of two racing uses moves last_step
            moved = await db.execute(
                update(TotpCredential).where(TotpCredential.user_id == user_id,
                                             TotpCredential.last_step < step)
                .values(last_step=step).returning(TotpCredential.user_id))
            if moved.scalar_one_or_none() is None:
                return CodeOutcome(False, "totp", "replayed")
        return CodeOutcome(True, "totp", "ok")

    async def _use_recovery(self, user_id: int, code: str, info: Any) -> CodeOutcome:
        wanted = code_hash(self._recovery_key, user_id, code)
        async with self._db.unit() as db:
            rows = (await db.execute(select(RecoveryCode.id, RecoveryCode.code_hash).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))).all()
            if not rows:
                return CodeOutcome(False, "recovery", "no_factor")
            found = None
            for row_id, stored in rows:  # every unused code compared, in constant time
                if hmac.compare_digest(stored, wanted):
                    found = row_id
            if found is None:
                return CodeOutcome(False, "recovery", "wrong_code")
            used = await db.execute(
                update(RecoveryCode).where(RecoveryCode.id == found,
                                           RecoveryCode.used_at.is_(None))
                .values(used_at=self._clock.now()).returning(RecoveryCode.id))
            if used.scalar_one_or_none() is None:  # a racing request used it first
                return CodeOutcome(False, "recovery", "replayed")
            left = len(rows) - 1
        await self._audit("recovery_code_used", info, user_id, left=left)
        return CodeOutcome(True, "recovery", "ok")

    # -- turning off, new codes, status ---------------------------------------------------

    async def disable_totp(self, user_id: int, password: str, code: str, info: Any) -> None:
        """Remove the app: needs the current password AND a code (app or recovery).
        Recovery codes go too when no second factor remains."""
        user = await self._accounts.get(user_id)
        if user is None or not user.is_active:
            raise NotFound("no_user", "No such account.")
        matches = await self._hasher.verify(password, user.password_hash)
        if self._accounts.is_locked(user):
            await self._audit("second_factor_failed", info, user_id, method="password",
                              reason="locked", context="disable")
            raise Forbidden("account_locked", "The account is locked after too many wrong "
                            "attempts. Wait a few minutes before trying again.")
        if not matches:
            await self._audit("second_factor_failed", info, user_id, method="password",
                              reason="wrong_password", context="disable")
            failed = await self._wrong(user_id, CodeOutcome(False, "password", "wrong_code"),
                                       info, "disable")
            raise self._refusal(failed.reason, "The password is not correct.")
        outcome = await self.check_code(user_id, code, info, purpose="disable")
        if not outcome.ok:
            raise self._refusal(outcome.reason, "That code is not right.")
        async with self._db.unit() as db:
            await db.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
            await db.flush()
            await keep_one_if_required(db, user_id)
            if not await sync_second_factor(db, user_id):
                await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        await self._audit("second_factor_removed", info, user_id, method="totp")

    @staticmethod
    def _refusal(reason: str, wrong: str) -> Forbidden | Invalid:
        if reason == "locked":
            return Forbidden("locked", "Too many wrong attempts: the account is locked for "
                             "a while.")
        if reason == "replayed":
            return Invalid("replayed", "That code was already used. Wait for the next one.")
        if reason == "no_factor":
            return Invalid("no_factor", "There is no second factor to check.")
        if reason == "malformed":
            return Invalid("malformed", "Type the 6-digit code from the app, or a recovery "
                           "code.")
        return Invalid("wrong_code", wrong)

    async def regenerate_recovery_codes(self, user_id: int, code: str, info: Any) -> list[str]:
        """Ten new recovery codes (the old ones stop working) after a valid code."""
        outcome = await self.check_code(user_id, code, info, purpose="regenerate")
        if not outcome.ok:
            raise self._refusal(outcome.reason, "That code is not right.")
        async with self._db.unit() as db:
            user = await db.get(User, user_id, with_for_update=True)
            if user is None or not user.has_second_factor:
                raise Conflict("no_factor", "Set up a second factor first.")
            codes = await self._replace_codes(db, user_id)
        await self._audit("recovery_codes_regenerated", info, user_id)
        return codes

    async def status(self, user_id: int) -> FactorStatus:
        async with self._db.unit() as db:
            row = await db.get(TotpCredential, user_id)
            left = (await db.execute(select(func.count()).select_from(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)))).scalar_one()
            passkeys = (await db.execute(select(func.count()).select_from(WebAuthnCredential)
                                         .where(WebAuthnCredential.user_id == user_id))
                        ).scalar_one()
        confirmed = row is not None and row.confirmed_at is not None
        return FactorStatus(confirmed, int(left), int(passkeys),
                            totp_pending=row is not None and not confirmed)
