"""Applications to join: people apply, admins approve (creating the account) or reject.

Submitting never tells whether a username is taken or already requested (that would let
anyone enumerate accounts): every well-formed application is stored and answered alike,
with a random reference shown once, which the applicant uses to look up the status. The
admin queue shows the conflicts, and the admin may approve under another username.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from streamzy.clock import Clock
from streamzy.services.accounts import Accounts
from streamzy.services.errors import Conflict, Invalid, NotFound
from streamzy.services.usernames import normalize_username
from streamzy.storage.crypto import token_digest
from streamzy.storage.db import Database
from streamzy.storage.models import Application, User

Audit = Callable[..., Awaitable[None]]
ThrottledAudit = Callable[..., Awaitable[None]]  # (key, event, info, user_id, **detail)
REFERENCE_BYTES = 15  # 120 bits: 24 base32 characters, shown as 6 groups of 4
_REFERENCE = re.compile(r"^[A-Z2-7]{24}$")


def new_reference() -> str:
    """A random status reference, easy to copy: ``ABCD-EFGH-...`` (base32, 120 bits)."""
    text = base64.b32encode(secrets.token_bytes(REFERENCE_BYTES)).decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def reference_digest(typed: str) -> str | None:
    """The stored digest of a typed reference (case, spaces and dashes ignored), or None."""
    compact = re.sub(r"[\s-]", "", typed).upper()
    if not _REFERENCE.match(compact):
        return None
    return token_digest(compact)


@dataclass(frozen=True)
class Submitted:
    application: Application
    reference: str  # shown once to the applicant, stored only as a digest


@dataclass(frozen=True)
class QueueEntry:
    application: Application
    name_taken: bool  # an account already has the requested name
    same_name_as: tuple[int, ...]  # other pending applications asking for the same name


@dataclass(frozen=True)
class Status:
    """What the holder of a reference may learn about their own application."""

    status: str  # pending, approved, rejected
    username: str = ""  # the account's name once approved (the admin may have chosen it)
    reason: str = ""  # the rejection reason the admin wrote for the applicant


class Applications:
    def __init__(self, db: Database, clock: Clock, accounts: Accounts, audit: Audit,
                 audit_throttled: ThrottledAudit) -> None:
        self._db = db
        self._clock = clock
        self._accounts = accounts
        self._audit = audit
        self._audit_throttled = audit_throttled

    async def submit(self, username: str, display_name: str, email: str, reason: str,
                     info: Any) -> Submitted:
        """Store an application; taken, already requested and free names are answered alike."""
        name = normalize_username(username)
        if name is None:  # a rule about the name's shape, the same for everyone
            raise Invalid("invalid_username", "That username is not allowed.")
        reference = new_reference()

        def row(holds_name: bool) -> Application:
            return Application(
                username=name, pending_username=name if holds_name else None,
                display_name=display_name, email=email, reason=reason, status="pending",
                created_at=self._clock.now(), client_ip=info.ip, reject_reason="",
                reference_digest=reference_digest(reference))

        # The same two lookups and one insert whatever the name: no timing difference.
        async with self._db.unit() as db:
            taken = (await db.execute(select(User.id).where(User.username == name))).first()
            held = (await db.execute(select(Application.id).where(
                Application.pending_username == name))).first()
        conflict = "name_taken" if taken else "already_pending" if held else None
        app = row(holds_name=held is None)
        try:
            async with self._db.unit() as db:
                db.add(app)
        except IntegrityError:  # another application took the name meanwhile: store it too
            app = row(holds_name=False)
            conflict = conflict or "already_pending"
            async with self._db.unit() as db:
                db.add(app)
        detail: dict[str, Any] = {"application_id": app.id, "username": name}
        if conflict:
            detail["conflict"] = conflict
        await self._audit("application_submitted", info, None, **detail)
        return Submitted(app, reference)

    async def status(self, typed_reference: str, info: Any) -> Status | None:
        """The status for a reference, or None (an unknown reference is audited)."""
        digest = reference_digest(typed_reference)
        app = None
        if digest is not None:
            async with self._db.unit() as db:
                app = (await db.execute(select(Application).where(
                    Application.reference_digest == digest))).scalar_one_or_none()
                user = await db.get(User, app.user_id) if app and app.user_id else None
        if app is None:
            await self._audit_throttled(f"apply-status:{info.ip}", "application_status_unknown",
                                        info, None, well_formed=digest is not None)
            return None
        await self._audit("application_status_viewed", info, None, application_id=app.id,
                          status=app.status)
        if app.status == "approved":
            return Status("approved", username=user.username if user else app.username)
        if app.status == "rejected":
            return Status("rejected", reason=app.reject_reason)
        return Status("pending")

    async def queue(self) -> list[QueueEntry]:
        """Pending applications, oldest first, each with the name conflicts the admin must see."""
        apps = await self.pending()
        names = {a.username for a in apps}
        async with self._db.unit() as db:
            taken = set((await db.execute(select(User.username).where(
                User.username.in_(names)))).scalars()) if names else set()
        return [QueueEntry(a, a.username in taken,
                           tuple(o.id for o in apps if o.username == a.username and o.id != a.id))
                for a in apps]

    async def pending(self) -> list[Application]:
        async with self._db.unit() as db:
            rows = await db.execute(select(Application).where(Application.status == "pending")
                                    .order_by(Application.created_at, Application.id))
            return list(rows.scalars())

    async def pending_count(self) -> int:
        async with self._db.unit() as db:
            return (await db.execute(select(func.count()).select_from(Application)
                                     .where(Application.status == "pending"))).scalar_one()

    async def get(self, application_id: int) -> Application | None:
        async with self._db.unit() as db:
            return await db.get(Application, application_id)

    async def _decide(self, application_id: int, actor_id: int, status: str,
                      reason: str = "") -> Application:
        """Move a pending application to ``status``; exactly one caller can win."""
        async with self._db.unit() as db:
            result = await db.execute(
                update(Application)
                .where(Application.id == application_id, Application.status == "pending")
                .values(status=status, pending_username=None, decided_by=actor_id,
                        decided_at=self._clock.now(), reject_reason=reason)
            )
            if result.rowcount != 1:
                app = await db.get(Application, application_id)
                if app is None:
                    raise NotFound("no_application", "No such application.")
                raise Conflict("already_decided", f"This application was already {app.status}.")
            return (await db.get(Application, application_id))  # type: ignore[return-value]

    async def approve(self, application_id: int, actor_id: int, info: Any,
                      username: str = "") -> tuple[User, str]:
        """Approve and create the account, under ``username`` if the admin chose one.

        Returns (user, one-time password). A taken or invalid name leaves the application
        pending (Conflict / Invalid), so the admin can pick another.
        """
        before = await self.get(application_id)
        app = await self._decide(application_id, actor_id, "approved")
        chosen = username.strip() or app.username
        try:
            user, password = await self._accounts.create_user(chosen, app.display_name,
                                                              app.email)
        except Exception:
            await self._reopen(application_id, before.pending_username if before else None)
            raise
        async with self._db.unit() as db:
            await db.execute(update(Application).where(Application.id == application_id)
                             .values(user_id=user.id))
        detail: dict[str, Any] = {"application_id": application_id, "new_user_id": user.id,
                                  "username": user.username}
        if user.username != app.username:
            detail["requested_username"] = app.username
        await self._audit("application_approved", info, actor_id, **detail)
        return user, password

    async def _reopen(self, application_id: int, held_name: str | None) -> None:
        """Put an application back in the queue so the admin can act on it again."""
        values: dict[str, Any] = {"status": "pending", "decided_by": None, "decided_at": None}
        try:
            async with self._db.unit() as db:
                await db.execute(update(Application).where(Application.id == application_id)
                                 .values(pending_username=held_name, **values))
        except IntegrityError:  # another application took the name meanwhile
            async with self._db.unit() as db:
                await db.execute(update(Application).where(Application.id == application_id)
                                 .values(pending_username=None, **values))

    async def reject(self, application_id: int, actor_id: int, reason: str, info: Any) -> None:
        if not reason.strip():
            raise Invalid("reason_required", "Give a reason for the rejection.")
        await self._decide(application_id, actor_id, "rejected", reason)
        await self._audit("application_rejected", info, actor_id,
                          application_id=application_id, reason=reason[:200])
