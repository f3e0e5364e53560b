"""Accounts: sign-in with lockout, password changes, and what admins do to users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from streamzy.clock import Clock, as_utc
from streamzy.metrics import Metrics
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.events import EventBus, UserDisabled
from streamzy.services.passwords import PasswordHasher, generate_password, password_problems
from streamzy.services.usernames import normalize_username
from streamzy.storage import system_state
from streamzy.storage.db import Database
from streamzy.storage.models import User

Audit = Callable[..., Awaitable[None]]
# (user_id, reason, keep_session_id) -> sessions ended
EndSessions = Callable[[int, str, int | None], Awaitable[int]]


@dataclass(frozen=True)
class Policy:
    lockout_threshold: int = 5
    lockout_seconds: int = 900
    one_time_password_hours: int = 72
    password_min_length: int = 12


@dataclass(frozen=True)
class LoginOutcome:
    user: User | None
    # ok, second_factor (password right, a code or passkey still owed: no session yet),
    # bad_credentials, locked, disabled, expired_one_time_password
    reason: str


class Accounts:
    def __init__(self, db: Database, clock: Clock, hasher: PasswordHasher, audit: Audit,
                 end_sessions: EndSessions, policy: Policy, events: EventBus, *,
                 metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._hasher = hasher
        self._audit = audit
        self._end_sessions = end_sessions
        self.policy = policy
        self._events = events

    async def get(self, user_id: int) -> User | None:
        async with self._db.unit() as db:
            return await db.get(User, user_id)

    async def by_username(self, raw: str) -> User | None:
        name = normalize_username(raw)
        if name is None:
            return None
        async with self._db.unit() as db:
            return (await db.execute(select(User).where(User.username == name))).scalar_one_or_none()

    async def authenticate(self, raw_username: str, password: str, info: Any) -> LoginOutcome:
        """Check credentials. Known and unknown names cost one bcrypt check each."""
        outcome = await self._authenticate(raw_username, password, info)
        self._metrics.sign_in(outcome.reason)
        return outcome

    async def _authenticate(self, raw_username: str, password: str,
                            info: Any) -> LoginOutcome:
        user = await self.by_username(raw_username)
        if user is not None and user.is_bot:
            user = None
        matches = await self._hasher.verify(password, user.password_hash if user else None)
        now = self._clock.now()
        if user is None:
            # Not the typed text: people type passwords into the username box. A keyed
            # fingerprint still shows repeated attempts at the same unknown name.
            await self._audit("login_failed", info, None, reason="unknown_user",
                              name_fingerprint=self._hasher.fingerprint(raw_username))
            return LoginOutcome(None, "bad_credentials")
        if self.is_locked(user):
            await self._audit("login_failed", info, user.id, reason="locked")
            return LoginOutcome(None, "locked")
        if not matches:
            return await self._failed(user, info)
        if not user.is_active:
            await self._audit("login_failed", info, user.id, reason="disabled")
            return LoginOutcome(None, "disabled")
        if (user.must_change_password and user.password_expires_at is not None
                and as_utc(user.password_expires_at) <= now):
            await self._audit("login_failed", info, user.id, reason="one_time_password_expired")
            return LoginOutcome(None, "expired_one_time_password")
        if user.has_second_factor:
            # Only the password step: the failure count is kept (else a known password
            # would reset it between every few guessed codes) and the sign-in is not a
            # success until the factor passes (SecondFactors.check_code clears it then).
            await self._audit("sign_in_second_factor_required", info, user.id)
            return LoginOutcome(user, "second_factor")
        await self.clear_failures(user)
        await self._audit("login_succeeded", info, user.id, method="password")
        return LoginOutcome(user, "ok")

    async def clear_failures(self, user: User) -> None:
        """A full proof of identity passed: forget earlier wrong guesses."""
        if user.failed_logins or user.locked_until is not None:  # no write when clean
            async with self._db.unit() as db:
                await db.execute(update(User).where(User.id == user.id)
                                 .values(failed_logins=0, locked_until=None))

    async def _failed(self, user: User, info: Any) -> LoginOutcome:
        failures, locked = await self.record_failure(user.id)
        await self._audit("login_failed", info, user.id, reason="bad_password", failures=failures)
        if locked:
            await self._audit("account_locked", info, user.id,
                              seconds=self.policy.lockout_seconds)
        return LoginOutcome(None, "bad_credentials")

    async def record_failure(self, user_id: int) -> tuple[int, bool]:
        """One more wrong password or second-factor code (sign-in, password change, code
        checks): one counter and one threshold for both; (failures, now locked)."""
        now = self._clock.now()
        async with self._db.unit() as db:
            failures = (await db.execute(
                update(User).where(User.id == user_id)
                .values(failed_logins=User.failed_logins + 1)
                .returning(User.failed_logins)
            )).scalar_one()
            locked = failures >= self.policy.lockout_threshold
            if locked:
                until = now + timedelta(seconds=self.policy.lockout_seconds)
                await db.execute(update(User).where(User.id == user_id)
                                 .values(failed_logins=0, locked_until=until))
        if locked:  # committed: sign-in and password-change guesses lock alike
            self._metrics.lockout()
        return failures, locked

    def is_locked(self, user: User) -> bool:
        """Whether ``user`` is inside a lockout window now."""
        return user.locked_until is not None and as_utc(user.locked_until) > self._clock.now()

    async def create_user(self, username: str, display_name: str, email: str, *,
                          is_admin: bool = False, is_bot: bool = False) -> tuple[User, str]:
        """Create an account with a one-time password; returns (user, password)."""
        name = normalize_username(username)
        if name is None or name.startswith("erased-"):  # erased accounts' names
            raise Invalid("invalid_username", "That username is not allowed.")
        password = generate_password()
        now = self._clock.now()
        user = User(
            username=name, display_name=display_name or name, email=email,
            password_hash="" if is_bot else await self._hasher.hash(password),
            is_admin=is_admin, is_bot=is_bot, is_active=True, must_change_password=not is_bot,
            password_expires_at=None if is_bot else
            now + timedelta(hours=self.policy.one_time_password_hours),
            failed_logins=0, created_at=now, accepts_dms=not is_bot,
        )
        async with self._db.unit() as db:
            if (await db.execute(select(User.id).where(User.username == name))).first():
                raise Conflict("name_taken", "That username is already taken.")
            db.add(user)
        return user, password

    async def change_password(self, user_id: int, current: str, new: str, info: Any, *,
                              session_id: int | None, end_other_sessions: bool) -> None:
        """Change the password after checking the current one.

        A wrong current password counts toward the same lockout as a failed sign-in, so a
        stolen session is no unlimited password oracle; the guess that locks the account
        also ends all its sessions (raises ``Forbidden("locked_signed_out")``). While the
        account is locked (by either path) no change is made (``Forbidden("account_locked")``).
        """
        user = await self._check_own_password(
            user_id, current, info, failed_event="password_change_failed",
            wrong_reason="wrong_current", via="password_change")
        problems = password_problems(new, min_length=self.policy.password_min_length,
                                     username=user.username)
        if new == current:
            problems.append("Choose a password different from the current one.")
        if problems:
            raise Invalid("weak_password", " ".join(problems))
        hashed = await self._hasher.hash(new)
        async with self._db.unit() as db:
            await db.execute(update(User).where(User.id == user_id).values(
                password_hash=hashed, must_change_password=False, password_expires_at=None,
                password_changed_at=self._clock.now(), failed_logins=0,
            ))
        ended = 0
        if end_other_sessions or user.must_change_password:
            ended = await self._end_sessions(user_id, "password_changed", session_id)
        await self._audit("password_changed", info, user_id, other_sessions_ended=ended)

    async def confirm_password(self, user_id: int, password: str, info: Any) -> None:
        """Step-up by password: the same checks, lockout and audit as the password form's
        current password (a wrong one is ``step_up_failed``; the guess that locks the
        account ends all its sessions). Success is audited by the caller, which also
        records the proof on the session."""
        await self._check_own_password(user_id, password, info, failed_event="step_up_failed",
                                       wrong_reason="wrong_password", via="step_up",
                                       method="password")

    async def _check_own_password(self, user_id: int, password: str, info: Any, *,
                                  failed_event: str, wrong_reason: str, via: str,
                                  **detail: Any) -> User:
        """A signed-in person proves their password again (password change, step-up).

        A wrong password counts toward the same lockout as a failed sign-in, so a stolen
        session is no unlimited password oracle; the guess that locks the account also
        ends all its sessions (``Forbidden("locked_signed_out")``). While the account is
        locked (by any path) nothing passes (``Forbidden("account_locked")``).
        """
        user = await self.get(user_id)
        if user is None or not user.is_active:
            raise NotFound("no_user", "No such account.")
        matches = await self._hasher.verify(password, user.password_hash)
        if self.is_locked(user):
            await self._audit(failed_event, info, user_id, **detail, reason="locked")
            raise Forbidden("account_locked", "The account is locked after too many wrong "
                            "passwords. Wait a few minutes before trying again.")
        if not matches:
            failures, locked = await self.record_failure(user_id)
            await self._audit(failed_event, info, user_id, **detail, reason=wrong_reason,
                              failures=failures)
            if locked:
                ended = await self._end_sessions(user_id, "locked", None)
                await self._audit("account_locked", info, user_id,
                                  seconds=self.policy.lockout_seconds, via=via,
                                  sessions_ended=ended)
                raise Forbidden("locked_signed_out", "Too many wrong passwords: the account "
                                "is locked for a while and its sessions have ended.")
            raise Invalid("wrong_password", "The password is not correct.")
        return user

    async def is_locked_now(self, user_id: int) -> bool:
        """Whether wrong passwords or codes have the account locked right now."""
        user = await self.get(user_id)
        return user is not None and self.is_locked(user)

    async def list_users(self) -> list[User]:
        async with self._db.unit() as db:
            return list((await db.execute(
                select(User).order_by(User.is_bot, User.username))).scalars())

    async def _admin_change(self, actor_id: int, user_id: int, info: Any, action: str,
                            values: dict[str, Any]) -> User:
        async with self._db.unit() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("no_user", "No such account.")
            if user.erased_at is not None and action != "disable":
                raise Conflict("erased", "This account was erased.")
            if user.id == actor_id and action in ("disable", "revoke_admin"):
                raise Forbidden("self_change", "You cannot do that to your own account.")
            for key, value in values.items():
                setattr(user, key, value)
            await db.flush()
            if action in ("disable", "revoke_admin"):
                admins = (await db.execute(select(func.count()).select_from(User).where(
                    User.is_admin.is_(True), User.is_active.is_(True)))).scalar_one()
                if admins < 1:
                    raise Conflict("last_admin", "At least one active admin must remain.")
        await self._audit("account_changed", info, actor_id, target_user_id=user_id,
                          action=action)
        return user

    async def set_active(self, actor_id: int, user_id: int, active: bool, info: Any) -> None:
        action = "enable" if active else "disable"
        await self._admin_change(actor_id, user_id, info, action, {"is_active": active})
        if not active:
            await self._end_sessions(user_id, "disabled", None)
            await self._events.publish(UserDisabled(user_id))

    async def unlock(self, actor_id: int, user_id: int, info: Any) -> None:
        await self._admin_change(actor_id, user_id, info, "unlock",
                                 {"locked_until": None, "failed_logins": 0})

    async def set_admin(self, actor_id: int, user_id: int, admin: bool, info: Any) -> None:
        action = "grant_admin" if admin else "revoke_admin"
        user = await self._admin_change(actor_id, user_id, info, action, {"is_admin": admin})
        if admin and not user.has_second_factor:
            policy = await system_state.read(self._db, system_state.SECOND_FACTOR_POLICY)
            if policy is not None and policy[0] == "admins":
                # Now covered by the policy without a factor: like a tightened policy, the
                # sessions end (open sockets too) and the next sign-in leads to enrolment.
                await self._end_sessions(user_id, "second_factor_required", None)

    async def reset_password(self, actor_id: int, user_id: int, info: Any) -> str:
        """Give the user a new one-time password (shown once); ends their sessions."""
        target = await self.get(user_id)
        if target is not None and target.is_bot:
            raise Invalid("bot_account", "Bots sign in with tokens, not passwords.")
        password = generate_password()
        hashed = await self._hasher.hash(password)
        expires = self._clock.now() + timedelta(hours=self.policy.one_time_password_hours)
        await self._admin_change(actor_id, user_id, info, "reset_password", {
            "password_hash": hashed, "must_change_password": True,
            "password_expires_at": expires, "failed_logins": 0, "locked_until": None,
        })
        await self._end_sessions(user_id, "password_reset", None)
        return password
