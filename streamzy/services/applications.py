"""Applications to join: people apply, admins approve (creating the account) or reject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from streamzy.clock import Clock
from streamzy.services.accounts import Accounts
from streamzy.services.errors import Conflict, Invalid, NotFound
from streamzy.services.usernames import normalize_username
from streamzy.storage.db import Database
from streamzy.storage.models import Application, User

Audit = Callable[..., Awaitable[None]]


class Applications:
    def __init__(self, db: Database, clock: Clock, accounts: Accounts, audit: Audit) -> None:
        self._db = db
        self._clock = clock
        self._accounts = accounts
        self._audit = audit

    async def submit(self, username: str, display_name: str, email: str, reason: str,
                     info: Any) -> Application:
        name = normalize_username(username)
        if name is None:
            raise Invalid("invalid_username", "That username is not allowed.")
        app = Application(
            username=name, pending_username=name, display_name=display_name, email=email,
            reason=reason, status="pending", created_at=self._clock.now(), client_ip=info.ip,
            reject_reason="",
        )
        try:
            async with self._db.unit() as db:
                if (await db.execute(select(User.id).where(User.username == name))).first():
                    raise Conflict("name_taken", "That username is already taken.")
                db.add(app)
        except IntegrityError:
            raise Conflict("already_pending",
                           "An application for that username is already waiting for review."
                           ) from None
        await self._audit("application_submitted", info, None, application_id=app.id,
                          username=name)
        return app

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

    async def approve(self, application_id: int, actor_id: int, info: Any) -> tuple[User, str]:
        """Approve and create the account; returns (user, one-time password)."""
        app = await self._decide(application_id, actor_id, "approved")
        try:
            user, password = await self._accounts.create_user(app.username, app.display_name,
                                                              app.email)
        except Exception:
            # Put the application back so the admin can act on it again.
            async with self._db.unit() as db:
                await db.execute(update(Application).where(Application.id == application_id)
                                 .values(status="pending", pending_username=app.username,
                                         decided_by=None, decided_at=None))
            raise
        async with self._db.unit() as db:
            await db.execute(update(Application).where(Application.id == application_id)
                             .values(user_id=user.id))
        await self._audit("application_approved", info, actor_id, application_id=application_id,
                          new_user_id=user.id, username=user.username)
        return user, password

    async def reject(self, application_id: int, actor_id: int, reason: str, info: Any) -> None:
        if not reason.strip():
            raise Invalid("reason_required", "Give a reason for the rejection.")
        await self._decide(application_id, actor_id, "rejected", reason)
        await self._audit("application_rejected", info, actor_id,
                          application_id=application_id, reason=reason[:200])
