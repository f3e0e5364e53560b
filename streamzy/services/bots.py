"""Bots: accounts that sign in with revocable tokens (shown once, stored hashed)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from itertools import batched
from typing import Any

from sqlalchemy import select, update

from streamzy.clock import Clock
from streamzy.services.accounts import Accounts
from streamzy.services.errors import NotFound
from streamzy.services.events import BotTokenRevoked, EventBus
from streamzy.storage.crypto import token_digest
from streamzy.storage.db import Database
from streamzy.storage.models import BotToken, Membership, Room, User

Audit = Callable[..., Awaitable[None]]
TOKEN_PREFIX = "szb_"  # noqa: S105 - a public prefix, not a secret


@dataclass(frozen=True)
class BotIdentity:
    token_id: int
    user_id: int
    username: str
    display_name: str


class Bots:
    def __init__(self, db: Database, clock: Clock, accounts: Accounts, audit: Audit,
                 events: EventBus) -> None:
        self._db = db
        self._clock = clock
        self._accounts = accounts
        self._audit = audit
        self._events = events

    async def create(self, actor_id: int, name: str, display_name: str, room_ids: list[int],
                     info: Any) -> tuple[User, str]:
        """Create a bot allowed in ``room_ids``; returns (bot user, token shown once).
        The rooms are checked first, so a refused bot leaves no account and no token."""
        async with self._db.unit() as db:
            for room_id in set(room_ids):
                if await db.get(Room, room_id) is None:
                    raise NotFound("unknown_room", "No such room.")
        user, _ = await self._accounts.create_user(name, display_name, "", is_bot=True)
        token = await self._issue(actor_id, user.id)
        now = self._clock.now()
        async with self._db.unit() as db:
            for room_id in set(room_ids):
                if await db.get(Room, room_id) is None:
                    raise NotFound("unknown_room", "No such room.")
                db.add(Membership(room_id=room_id, user_id=user.id, joined_at=now,
                                  last_read_seq=0))
        await self._audit("bot_created", info, actor_id, bot_user_id=user.id,
                          rooms=",".join(str(r) for r in sorted(set(room_ids))))
        return user, token

    async def _issue(self, actor_id: int, user_id: int) -> str:
        public = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{public}_{secrets.token_urlsafe(32)}"
        async with self._db.unit() as db:
            db.add(BotToken(user_id=user_id, token_hash=token_digest(token),
                            prefix=f"{TOKEN_PREFIX}{public}", created_at=self._clock.now(),
                            created_by=actor_id))
        return token

    async def resolve(self, token: str | None) -> BotIdentity | None:
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        async with self._db.unit() as db:
            row = (await db.execute(
                select(BotToken, User).join(User, User.id == BotToken.user_id)
                .where(BotToken.token_hash == token_digest(token),
                       BotToken.revoked_at.is_(None)))).first()
        if row is None:
            return None
        bot_token, user = row
        if not user.is_active or not user.is_bot:
            return None
        return BotIdentity(bot_token.id, user.id, user.username, user.display_name)

    async def still_valid(self, token_id: int) -> bool:
        async with self._db.unit() as db:
            row = (await db.execute(
                select(BotToken.id).join(User, User.id == BotToken.user_id)
                .where(BotToken.id == token_id, BotToken.revoked_at.is_(None),
                       User.is_active.is_(True)))).first()
        return row is not None

    async def valid_among(self, token_ids: Collection[int]) -> set[int]:
        """Which of ``token_ids`` are still usable (not revoked, bot account active)."""
        valid: set[int] = set()
        async with self._db.engine.connect() as conn:
            for chunk in batched(sorted(set(token_ids)), 500, strict=False):
                valid.update((await conn.execute(
                    select(BotToken.id).join(User, User.id == BotToken.user_id)
                    .where(BotToken.id.in_(chunk), BotToken.revoked_at.is_(None),
                           User.is_active.is_(True)))).scalars())
        return valid

    async def revoke(self, actor_id: int, token_id: int, info: Any) -> None:
        async with self._db.unit() as db:
            result = await db.execute(update(BotToken).where(
                BotToken.id == token_id, BotToken.revoked_at.is_(None))
                .values(revoked_at=self._clock.now()))
        if not result.rowcount:
            raise NotFound("no_token", "No such active token.")
        await self._audit("bot_token_revoked", info, actor_id, token_id=token_id)
        await self._events.publish(BotTokenRevoked(token_id))

    async def allow_dms(self, actor_id: int, bot_user_id: int, allowed: bool,
                        info: Any) -> None:
        """Let people open direct conversations with this bot (or stop them: existing
        conversations stay)."""
        async with self._db.unit() as db:
            result = await db.execute(update(User).where(
                User.id == bot_user_id, User.is_bot.is_(True)).values(accepts_dms=allowed))
        if not result.rowcount:
            raise NotFound("no_bot", "No such bot.")
        await self._audit("bot_dms_allowed" if allowed else "bot_dms_refused", info, actor_id,
                          bot_user_id=bot_user_id)

    async def list(self) -> list[tuple[BotToken, User]]:
        async with self._db.unit() as db:
            rows = await db.execute(select(BotToken, User).join(User, User.id == BotToken.user_id)
                                    .order_by(BotToken.created_at.desc()))
            return [(t, u) for t, u in rows]
