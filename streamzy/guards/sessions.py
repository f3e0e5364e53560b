"""Server-side sessions: issue, resolve (idle and absolute expiry), revoke.

The cookie carries 64 random bytes; the database keeps only their SHA-256, so a stolen
database cannot be replayed as cookies. The same resolver serves HTTP and Socket.IO.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from http.cookies import SimpleCookie
from itertools import batched
from typing import Any

from sqlalchemy import TextClause, delete, select, text, update

from streamzy.clock import Clock, as_utc
from streamzy.config import SESSION_TOUCH_SECONDS
from streamzy.guards.context import RequestInfo
from streamzy.services.events import EventBus, SessionsEnded
from streamzy.storage.crypto import token_digest
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import Session, User
from streamzy.storage.sqlite import read_datetime

# Activity is written at most this often; config refuses idle timeouts too close to it.
TOUCH_EVERY = timedelta(seconds=SESSION_TOUCH_SECONDS)
# The second-factor policy rides along as a scalar subquery: a change made in the console
# applies to the next request or socket event in every process, with no extra round trip.
BY_TOKEN = text("SELECT s.id, s.csrf_token, s.created_at, s.last_seen_at, u.id, u.username, "
                "u.display_name, u.is_admin, u.must_change_password, u.is_active, "
                "u.has_second_factor, s.reauth_at, s.signed_in_with, "
                "(SELECT value FROM system_state WHERE name = 'second_factor_policy') "
                "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = :key")
BY_ID = text("SELECT s.id, s.csrf_token, s.created_at, s.last_seen_at, u.id, u.username, "
             "u.display_name, u.is_admin, u.must_change_password, u.is_active, "
             "u.has_second_factor, s.reauth_at, s.signed_in_with, "
             "(SELECT value FROM system_state WHERE name = 'second_factor_policy') "
             "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = :key")


def _session_rows(tx: Tx, statement: TextClause, key: Any) -> Any:
    return tx.rows(statement, {"key": key})
CHECK_CHUNK = 500  # ids per IN list (SQLite and PostgreSQL both take far more)


class EndReason(StrEnum):
    """Why a session ended: told to the end listeners, and from them to the browser.

    The web edge turns these into the notice the sign-in page shows
    (streamzy/web/sign_in_notices.py); this is the only list of them.
    """

    IDLE = "idle"  # no activity for longer than the idle timeout
    ABSOLUTE = "absolute"  # older than the absolute lifetime
    DISABLED = "disabled"  # the account was disabled
    EXPIRED = "expired"  # housekeeping removed it (idle or too old)
    UNKNOWN = "unknown"  # gone when re-checked (revoked meanwhile)
    LOGOUT = "logout"  # its owner signed out
    REPLACED = "replaced"  # its owner signed in again on the same browser
    REVOKED_BY_USER = "revoked_by_user"  # its owner revoked it from the account page
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason: the password changed
    LOCKED = "locked"  # wrong current passwords on the password form locked the account
    # The second-factor policy now covers an account that has none: its sockets must not
    # keep chatting, and its next sign-in leads to enrolment.
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    SECOND_FACTOR_RESET = "second_factor_reset"  # an admin removed the account's factors


@dataclass(frozen=True)
class ActiveSession:
    id: int
    user_id: int
    username: str
    display_name: str
    is_admin: bool
    must_change_password: bool
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    has_second_factor: bool = False
    # The policy wants a second factor and the account has none: like the owed password
    # change, nothing but enrolment (and sign-out) is reachable until it has one.
    must_enrol: bool = False
    reauth_at: datetime | None = None  # the last proof of identity (sign-in or step-up)
    signed_in_with: str = ""


def enrolment_required(policy: str | None, is_admin: bool, has_second_factor: bool) -> bool:
    """Whether the second-factor policy (off, admins, everyone) still wants one here."""
    if has_second_factor:
        return False
    return policy == "everyone" or (policy == "admins" and is_admin)


@dataclass(frozen=True)
class Resolution:
    session: ActiveSession | None
    reason: str  # "ok", "missing", "unknown", "idle", "absolute", "disabled"


class SessionStore:
    """Issues and resolves sessions; publishes SessionsEnded when sessions end."""

    def __init__(self, db: Database, clock: Clock, events: EventBus, idle_seconds: int,
                 absolute_seconds: int) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self.idle = timedelta(seconds=idle_seconds)
        self.absolute = timedelta(seconds=absolute_seconds)

    async def _ended(self, ids: list[int], reason: str) -> None:
        if ids:
            await self._events.publish(SessionsEnded(tuple(ids), reason))

    async def issue(self, user_id: int, info: RequestInfo,
                    signed_in_with: str = "password") -> tuple[str, int]:
        """Start a session with a fresh token (never reuse one: no fixation).

        Signing in is a proof of identity: the session starts re-authenticated."""
        token = secrets.token_urlsafe(64)
        now = self._clock.now()
        async with self._db.unit() as db:
            row = Session(
                token_hash=token_digest(token), user_id=user_id,
                csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                client_ip=info.ip, user_agent=info.user_agent, reauth_at=now,
                signed_in_with=signed_in_with,
            )
            db.add(row)
            await db.flush()
            session_id = row.id
        return token, session_id

    async def resolve(self, token: str | None, *, touch: bool = True) -> Resolution:
        """Find the live session for ``token``; an expired one is deleted on sight."""
        if not token or len(token) > 200:
            return Resolution(None, "missing")
        return await self._resolve(BY_TOKEN, token_digest(token), touch)

    async def check(self, session_id: int, *, touch: bool = False) -> Resolution:
        """Re-check a session known by id (the socket edge does this on every event)."""
        return await self._resolve(BY_ID, session_id, touch)

    async def _resolve(self, statement: TextClause, key: Any, touch: bool) -> Resolution:
        # A plain read (one thread hop on SQLite: every socket connect of a reconnect storm
        # comes here); the rare writes, expiry and the activity touch, follow on their own.
        now = self._clock.now()
        rows = await self._db.read(_session_rows, statement, key)
        if not rows:
            return Resolution(None, "unknown")
        (session_id, csrf, created, seen, user_id, username, display_name, is_admin,
         must_change, active, has_factor, reauth, signed_in_with, policy) = rows[0]
        created, seen = read_datetime(created), read_datetime(seen)
        reason = self._reason(created, seen, bool(active), now)
        if reason != "ok":
            async with self._db.unit() as db:
                await db.execute(delete(Session).where(Session.id == session_id))
            await self._ended([session_id], reason)
            return Resolution(None, reason)
        if touch and now - seen >= TOUCH_EVERY:
            async with self._db.unit() as db:
                await db.execute(update(Session).where(Session.id == session_id)
                                 .values(last_seen_at=now))
            seen = now
        return Resolution(ActiveSession(
            id=session_id, user_id=user_id, username=username, display_name=display_name,
            is_admin=bool(is_admin), must_change_password=bool(must_change), csrf_token=csrf,
            created_at=created, last_seen_at=seen, has_second_factor=bool(has_factor),
            must_enrol=enrolment_required(policy, bool(is_admin), bool(has_factor)),
            reauth_at=None if reauth is None else read_datetime(reauth),
            signed_in_with=signed_in_with or ""), "ok")

    async def reauthenticated(self, session_id: int) -> None:
        """Record a fresh proof of identity (the step-up page passed) on this session."""
        async with self._db.unit() as db:
            await db.execute(update(Session).where(Session.id == session_id)
                             .values(reauth_at=self._clock.now()))

    def recently_proved(self, session: ActiveSession, seconds: int) -> bool:
        """Whether ``session`` proved its owner within the last ``seconds``."""
        return (session.reauth_at is not None
                and self._clock.now() - session.reauth_at <= timedelta(seconds=seconds))

    def _reason(self, created: datetime, seen: datetime, active: bool, now: datetime) -> str:
        if now - created > self.absolute:
            return EndReason.ABSOLUTE
        if now - seen > self.idle:
            return EndReason.IDLE
        if not active:
            return EndReason.DISABLED
        return "ok"

    async def check_many(self, ids: Collection[int],
                         touch: Collection[int] = ()) -> dict[int, datetime]:
        """Re-check many sessions at once (the socket edge's periodic sweep).

        Returns the live ones with their last activity. Expired ones are deleted, and
        every ended or vanished one is announced to the listeners (which drop its
        sockets). Live sessions in ``touch`` had activity: their last_seen_at moves to
        now in one UPDATE. Plain rows, in chunks: no ORM entities for thousands of ids.
        """
        now = self._clock.now()
        alive: dict[int, datetime] = {}
        ended: dict[str, list[int]] = {}
        async with self._db.engine.begin() as conn:
            for chunk in batched(sorted(set(ids) | set(touch)), CHECK_CHUNK, strict=False):
                found = await conn.execute(
                    select(Session.id, Session.created_at, Session.last_seen_at, User.is_active)
                    .join(User, User.id == Session.user_id).where(Session.id.in_(chunk)))
                present: set[int] = set()
                for session_id, created, seen, active in found:
                    present.add(session_id)
                    seen = as_utc(seen)
                    reason = self._reason(as_utc(created), seen, active, now)
                    if reason == "ok":
                        alive[session_id] = seen
                    else:
                        ended.setdefault(reason, []).append(session_id)
                vanished = [i for i in chunk if i not in present]  # revoked meanwhile
                if vanished:
                    ended.setdefault(EndReason.UNKNOWN, []).extend(vanished)
            expired = [i for reason, group in ended.items() if reason != EndReason.UNKNOWN
                       for i in group]
            for chunk in batched(expired, CHECK_CHUNK, strict=False):
                await conn.execute(delete(Session).where(Session.id.in_(chunk)))
            due = sorted(i for i in set(touch) if i in alive)
            for chunk in batched(due, CHECK_CHUNK, strict=False):
                await conn.execute(update(Session).where(Session.id.in_(chunk))
                                   .values(last_seen_at=now))
            alive.update(dict.fromkeys(due, now))
        for reason, group in ended.items():
            await self._ended(group, reason)
        return alive

    async def revoke(self, session_id: int, reason: str) -> bool:
        async with self._db.unit() as db:
            result = await db.execute(delete(Session).where(Session.id == session_id))
        if result.rowcount:
            await self._ended([session_id], reason)
        return bool(result.rowcount)

    async def revoke_user(self, user_id: int, reason: str, *, keep: int | None = None) -> int:
        """End every session of ``user_id`` (but ``keep``); returns how many ended."""
        async with self._db.unit() as db:
            query = select(Session.id).where(Session.user_id == user_id)
            if keep is not None:
                query = query.where(Session.id != keep)
            ids = list((await db.execute(query)).scalars())
            if ids:
                await db.execute(delete(Session).where(Session.id.in_(ids)))
        await self._ended(ids, reason)
        return len(ids)

    async def revoke_users(self, user_ids: Collection[int], reason: str) -> int:
        """End every session of every one of ``user_ids`` (in chunks); how many ended."""
        ids: list[int] = []
        async with self._db.unit() as db:
            for chunk in batched(sorted(set(user_ids)), CHECK_CHUNK, strict=False):
                found = list((await db.execute(
                    select(Session.id).where(Session.user_id.in_(chunk)))).scalars())
                if found:
                    await db.execute(delete(Session).where(Session.id.in_(found)))
                ids += found
        await self._ended(ids, reason)
        return len(ids)

    async def list_for_user(self, user_id: int) -> list[Session]:
        async with self._db.unit() as db:
            rows = await db.execute(select(Session).where(Session.user_id == user_id)
                                    .order_by(Session.last_seen_at.desc()))
            return list(rows.scalars())

    async def purge_expired(self) -> int:
        """Delete sessions past either timeout (housekeeping; resolve also checks)."""
        now = self._clock.now()
        async with self._db.unit() as db:
            query = select(Session.id).where(
                (Session.created_at < now - self.absolute) | (Session.last_seen_at < now - self.idle)
            )
            ids = list((await db.execute(query)).scalars())
            if ids:
                await db.execute(delete(Session).where(Session.id.in_(ids)))
        await self._ended(ids, EndReason.EXPIRED)
        return len(ids)


def cookie_from_headers(headers: Any, name: str) -> str | None:
    """Read cookie ``name`` from raw ASGI headers (the socket edge has no Quart request)."""
    for header, value in headers or []:
        if header == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # malformed cookie header: no session
                return None
            if name in jar:
                return jar[name].value
    return None
