"""What admins decide about second factors: the policy (off, admins, everyone), how much of
the membership it covers, and resetting someone's second factor.

The policy lives in system_state ``second_factor_policy`` and every session resolve reads
it, so a change gates the next request and socket connect in every process. Sockets that
are already connected never resolve again by themselves, so tightening the policy ends the
sessions of everyone it newly covers who has no second factor: their sockets drop on every
process (the usual SessionsEnded path), and their next sign-in leads to enrolment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from streamzy.clock import Clock
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.factor_flags import sync_second_factor
from streamzy.storage import system_state
from streamzy.storage.db import Database
from streamzy.storage.models import (
    RecoveryCode,
    SignInChallenge,
    SystemState,
    TotpCredential,
    User,
    WebAuthnCredential,
)

Audit = Callable[..., Awaitable[None]]
# (user ids, reason) -> sessions ended; the session store's bulk revoke
EndSessions = Callable[[Collection[int], str], Awaitable[int]]
POLICIES = ("off", "admins", "everyone")
# Session end reasons (guards/sessions.py EndReason; services do not import guards).
ENDED_BY_POLICY = "second_factor_required"
ENDED_BY_RESET = "second_factor_reset"
MISSING_LISTED = 200  # people without a factor named on the console page; counts cover all


@dataclass(frozen=True)
class Person:
    id: int
    username: str
    display_name: str
    is_admin: bool


@dataclass(frozen=True)
class Coverage:
    """Who has a second factor (active, human accounts) under the current policy."""

    policy: str
    admins_with: int
    admins_without: int
    members_with: int  # non-admins
    members_without: int
    missing: tuple[Person, ...]  # without one, admins first (at most MISSING_LISTED)

    @property
    def everyone_with(self) -> int:
        return self.admins_with + self.members_with

    @property
    def everyone_without(self) -> int:
        return self.admins_without + self.members_without

    @property
    def required_without(self) -> int:
        """Accounts the policy covers that still have to enrol."""
        if self.policy == "everyone":
            return self.everyone_without
        return self.admins_without if self.policy == "admins" else 0


@dataclass(frozen=True)
class ResetOutcome:
    username: str
    totp: bool
    recovery_codes: int
    passkeys: int
    sessions_ended: int


def covers(policy: str, is_admin: bool) -> bool:
    """Whether ``policy`` wants a second factor from this kind of account."""
    return policy == "everyone" or (policy == "admins" and is_admin)


def _people() -> Any:
    return (User.is_active.is_(True), User.is_bot.is_(False), User.erased_at.is_(None))


class SecondFactorAdmin:
    def __init__(self, db: Database, clock: Clock, audit: Audit,
                 end_sessions: EndSessions) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._end_sessions = end_sessions

    async def policy(self) -> str:
        """The policy in force: off, admins or everyone (off when never set)."""
        found = await system_state.read(self._db, system_state.SECOND_FACTOR_POLICY)
        return found[0] if found is not None and found[0] in POLICIES else "off"

    async def coverage(self) -> Coverage:
        """Counts of admins and members with and without a second factor, and who is
        missing one (for the console page and the health check)."""
        policy = await self.policy()
        async with self._db.unit() as db:
            counts = (await db.execute(
                select(User.is_admin, User.has_second_factor, func.count())
                .where(*_people()).group_by(User.is_admin, User.has_second_factor))).all()
            missing = (await db.execute(
                select(User.id, User.username, User.display_name, User.is_admin)
                .where(*_people(), User.has_second_factor.is_(False))
                .order_by(User.is_admin.desc(), User.username).limit(MISSING_LISTED))).all()
        tally = {(bool(a), bool(f)): int(n) for a, f, n in counts}
        return Coverage(
            policy=policy, admins_with=tally.get((True, True), 0),
            admins_without=tally.get((True, False), 0),
            members_with=tally.get((False, True), 0),
            members_without=tally.get((False, False), 0),
            missing=tuple(Person(int(i), u, d, bool(a)) for i, u, d, a in missing))

    async def set_policy(self, actor_id: int, policy: str, info: Any) -> int:
        """Set the policy; returns how many sessions ended because it now covers them.

        Refused when it would cover the acting admin while they have no second factor:
        they enrol first, so an admin never locks themselves into enrolment by accident.
        """
        if policy not in POLICIES:
            raise Invalid("invalid_policy", "Choose off, admins or everyone.")
        async with self._db.unit() as db:
            actor = await db.get(User, actor_id)
            if actor is None or not actor.is_admin:
                raise Forbidden("forbidden", "Admins only.")
            if covers(policy, True) and not actor.has_second_factor:
                raise Forbidden("enrol_first", "Set up your own second factor before "
                                "requiring one.")
            found = await db.get(SystemState, system_state.SECOND_FACTOR_POLICY,
                               with_for_update=True)
            previous = found.value if found is not None and found.value in POLICIES else "off"
            await system_state.write(db, system_state.SECOND_FACTOR_POLICY, policy,
                                     self._clock.now())
            # In the same transaction as the change: who is newly covered and has nothing.
            newly = [] if policy == previous else list((await db.execute(
                select(User.id, User.is_admin).where(
                    *_people(), User.has_second_factor.is_(False)))).all())
        affected = [int(i) for i, admin in newly
                    if covers(policy, bool(admin)) and not covers(previous, bool(admin))]
        ended = await self._end_sessions(affected, ENDED_BY_POLICY) if affected else 0
        await self._audit("second_factor_policy_changed", info, actor_id, policy=policy,
                          previous=previous, sessions_ended=ended)
        return ended

    async def reset(self, actor_id: int, user_id: int, info: Any) -> ResetOutcome:
        """Remove every second factor of ``user_id`` (TOTP, recovery codes, passkeys, and
        any sign-in step in progress) in one transaction, and end their sessions.

        Not on one's own account: removing your own factor needs your password and a code
        (the account page), and an admin reset must not be a way around that.
        """
        if user_id == actor_id:
            raise Forbidden("self_change", "Remove your own second factor from your "
                            "account page.")
        async with self._db.unit() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("no_user", "No such account.")
            if user.is_bot:
                raise Invalid("bot_account", "Bots sign in with tokens, not second factors.")
            if user.erased_at is not None:
                raise Conflict("erased", "This account was erased.")
            totp = (await db.execute(delete(TotpCredential).where(
                TotpCredential.user_id == user_id))).rowcount
            codes = (await db.execute(delete(RecoveryCode).where(
                RecoveryCode.user_id == user_id))).rowcount
            passkeys = (await db.execute(delete(WebAuthnCredential).where(
                WebAuthnCredential.user_id == user_id))).rowcount
            if not (totp or codes or passkeys):
                raise Invalid("no_second_factor", "This account has no second factor.")
            # A half-finished sign-in or ceremony must not outlive the factors it was for.
            await db.execute(delete(SignInChallenge).where(SignInChallenge.user_id == user_id))
            await sync_second_factor(db, user_id)
            username = user.username
        ended = await self._end_sessions([user_id], ENDED_BY_RESET)
        outcome = ResetOutcome(username, bool(totp), int(codes or 0), int(passkeys or 0),
                               ended)
        await self._audit("second_factor_reset", info, actor_id, target_user_id=user_id,
                          totp=outcome.totp, recovery_codes=outcome.recovery_codes,
                          passkeys=outcome.passkeys, sessions_ended=ended)
        return outcome
