"""GDPR-style erasure of a person by an admin (or ``streamzy erase-user``), audited.

The policy (SECURITY.md, "Erasing a user"): the account row stays, anonymised, so audit
rows, moderation records and message tombstones keep pointing at one id that now says
nothing about the person: username ``erased-<id>``, display name "Erased user", email,
password hash and one-time password data cleared, disabled, ``erased_at`` set. Their
sessions end and their sockets drop (the same revoke paths as a disable), their bot
tokens are revoked, their memberships, bans, reactions and the mentions of them are
removed, and the applications they made lose their personal data. Their messages are
either deleted (default: the ciphertext destroyed like a delete, a tombstone keeps each
sequence number so other people's history and replies still line up; each delete takes
the room's next change number and open pages are told, as for a delete by hand) or, with ``anonymise``,
kept and shown as the erased account's. Audit rows are kept: they are the security record
and go with the audit retention period. Direct conversations the person was the last
member of are shredded. Their uploads no message carries yet are removed; files in their
messages go with those messages (delete) or stay with them (anonymise).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, func, select, update

from streamzy.clock import Clock
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound
from streamzy.services.events import (
    BotTokenRevoked,
    EventBus,
    MemberRemoved,
    MessageChanged,
    UserDisabled,
)
from streamzy.services.room_access import require_admin
from streamzy.services.shredding import Shredder, scrub
from streamzy.services.usernames import normalize_username
from streamzy.storage.db import Database
from streamzy.storage.models import (
    Application,
    Attachment,
    BotToken,
    Membership,
    Mention,
    Message,
    Reaction,
    RecoveryCode,
    Room,
    RoomBan,
    SearchTerm,
    TotpCredential,
    User,
    WebAuthnCredential,
)

if TYPE_CHECKING:
    from streamzy.services.message_state import StoredMessage

Audit = Callable[..., Awaitable[None]]
# Reads a message as it is now (MessageHistory.one), for the live notice of its deletion.
ReadOne = Callable[[int, int, Any], Awaitable["StoredMessage | None"]]
EndSessions = Callable[[int, str], Awaitable[int]]
MessagePolicy = Literal["delete", "anonymise"]
POLICIES: tuple[str, ...] = ("delete", "anonymise")
BATCH = 500  # messages per transaction: chat in those rooms waits at most one batch
ERASED_NAME = "Erased user"
# Open pages are told of this many deletions live; beyond it (a prolific account) they
# see the tombstones when they next catch up (join with since_change), as after any gap.
LIVE_NOTICES = 2000


@dataclass(frozen=True)
class Erased:
    user_id: int
    username: str  # the new, anonymous one
    messages: int  # deleted (0 when anonymised)
    rooms_left: int
    tokens_revoked: int
    sessions_ended: int


class Erasure:
    def __init__(self, db: Database, clock: Clock, events: EventBus, audit: Audit,
                 end_sessions: EndSessions, shredder: Shredder,
                 read_one: ReadOne | None = None) -> None:
        self._db = db
        self._clock = clock
        self._events = events
        self._audit = audit
        self._end_sessions = end_sessions
        self._shredder = shredder
        self._read_one = read_one

    async def target(self, raw_username: str) -> User:
        name = normalize_username(raw_username)
        async with self._db.unit() as db:
            user = None if name is None else (await db.execute(
                select(User).where(User.username == name))).scalar_one_or_none()
        if user is None:
            raise NotFound("no_user", "No such account.")
        return user

    async def _check(self, actor_id: int | None, user_id: int, confirm: str | None) -> User:
        async with self._db.unit() as db:
            if actor_id is not None:
                await require_admin(db, actor_id, "admin_only", "Only admins erase accounts.")
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("no_user", "No such account.")
            if user.erased_at is not None:
                raise Conflict("already_erased", "This account was already erased.")
            if actor_id == user_id:
                raise Forbidden("self_change", "You cannot erase your own account.")
            if confirm is not None and confirm != user.username:
                raise Invalid("confirm_mismatch", "Type the username exactly to erase it.")
            if user.is_admin and user.is_active:
                others = await db.scalar(select(func.count()).select_from(User).where(
                    User.is_admin.is_(True), User.is_active.is_(True), User.id != user_id))
                if not others:
                    raise Conflict("last_admin", "At least one active admin must remain.")
            return user

    async def erase(self, actor_id: int | None, user_id: int, info: Any, *,
                    messages: str = "delete", confirm: str | None = None) -> Erased:
        """Erase ``user_id`` per the policy above (``actor_id`` None: the CLI, as system)."""
        if messages not in POLICIES:
            raise Invalid("invalid_policy", "Messages are either deleted or anonymised.")
        user = await self._check(actor_id, user_id, confirm)
        was_bot = user.is_bot
        now = self._clock.now()
        anonymous = await self._anonymise_account(user_id, now)
        sessions = await self._end_sessions(user_id, "erased")
        tokens = await self._revoke_tokens(user_id, now)
        rooms = await self._leave_everything(user_id)
        deleted = await self._delete_messages(user_id, now, info) if messages == "delete" else 0
        await self._audit("user_erased", info, actor_id, target_user_id=user_id,
                          messages=messages, messages_deleted=deleted, rooms_left=len(rooms),
                          tokens_revoked=len(tokens), sessions_ended=sessions, bot=was_bot)
        await self._events.publish(UserDisabled(user_id))
        for token_id in tokens:
            await self._events.publish(BotTokenRevoked(token_id))
        for room_id, kind in rooms:
            await self._events.publish(MemberRemoved(room_id, user_id, "erased"))
            if kind == "dm":
                await self._shredder.shred_if_abandoned(room_id, info, actor_id)
        await scrub(self._db, ("users", "applications", "messages", "reactions",
                               "attachments"))
        return Erased(user_id, anonymous, deleted, len(rooms), len(tokens), sessions)

    async def _announce(self, changed: list[tuple[int, int, int]], info: Any) -> None:
        """Committed deletions go out like deletes by hand (``message_changed``)."""
        if self._read_one is None:
            return
        for room_id, message_id, change in changed:
            message = await self._read_one(room_id, message_id, info)
            if message is not None:
                await self._events.publish(MessageChanged(room_id, change, "delete", message))

    async def _anonymise_account(self, user_id: int, now: Any) -> str:
        async with self._db.unit() as db:
            user = await db.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFound("no_user", "No such account.")
            old_name = user.username
            name = f"erased-{user_id}"
            taken = await db.scalar(select(User.id).where(User.username == name,
                                                          User.id != user_id))
            if taken is not None:  # an account predating the reserved prefix took it
                name = f"erased-{user_id}-{secrets.token_hex(4)}"
            user.username = name
            user.display_name = ERASED_NAME
            user.email = ""
            user.password_hash = ""
            user.must_change_password = False
            user.password_expires_at = None
            user.password_changed_at = None
            user.failed_logins = 0
            user.locked_until = None
            user.is_active = False
            user.is_admin = False
            user.accepts_dms = False
            user.erased_at = now
            # Second factors are personal data too (and a passkey could otherwise still
            # prove the erased identity): sealed TOTP secret, recovery codes, passkeys.
            user.has_second_factor = False
            for table in (TotpCredential, RecoveryCode, WebAuthnCredential):
                await db.execute(delete(table).where(table.user_id == user_id))
            await db.execute(update(Application).where(
                (Application.user_id == user_id) | (Application.username == old_name)
            ).values(username=name, pending_username=None, reference_digest=None,
                     display_name=ERASED_NAME, email="", reason="", client_ip="",
                     reject_reason=""))
        return name

    async def _revoke_tokens(self, user_id: int, now: Any) -> list[int]:
        async with self._db.unit() as db:
            ids = list((await db.execute(select(BotToken.id).where(
                BotToken.user_id == user_id, BotToken.revoked_at.is_(None)))).scalars())
            if ids:
                await db.execute(update(BotToken).where(BotToken.id.in_(ids))
                                 .values(revoked_at=now))
        return ids

    async def _leave_everything(self, user_id: int) -> list[tuple[int, str]]:
        async with self._db.unit() as db:
            rooms = [(int(r), str(k)) for r, k in (await db.execute(
                select(Membership.room_id, Room.kind).join(Room, Room.id == Membership.room_id)
                .where(Membership.user_id == user_id))).all()]
            await db.execute(delete(Membership).where(Membership.user_id == user_id))
            await db.execute(delete(RoomBan).where(RoomBan.user_id == user_id))
            await db.execute(delete(Reaction).where(Reaction.user_id == user_id))
            await db.execute(delete(Mention).where(Mention.user_id == user_id))
            # Uploads no message carries yet are theirs alone: gone with the account.
            await db.execute(delete(Attachment).where(Attachment.uploader_id == user_id,
                                                      Attachment.message_id.is_(None)))
        return rooms

    async def _delete_messages(self, user_id: int, now: Any, info: Any) -> int:
        """Destroy their messages' text in batches; each delete takes its room's next
        change number, like a delete by hand, and open pages are told after each batch."""
        total = 0
        while True:
            async with self._db.unit() as db:
                batch = (await db.execute(
                    select(Message.id, Message.room_id).where(
                        Message.sender_id == user_id, Message.deleted_at.is_(None))
                    .order_by(Message.id).limit(BATCH))).all()
                if not batch:
                    return total
                ids = [int(i) for i, _ in batch]
                changed: list[tuple[int, int, int]] = []
                for message_id, room_id in batch:
                    change = (await db.execute(
                        update(Room).where(Room.id == room_id)
                        .values(last_change=Room.last_change + 1)
                        .returning(Room.last_change))).scalar_one()
                    await db.execute(update(Message).where(Message.id == message_id).values(
                        ciphertext=b"", deleted_at=now, change_seq=change,
                        mentions_room=False, edited_at=None))
                    changed.append((int(room_id), int(message_id), int(change)))
                await db.execute(delete(Reaction).where(Reaction.message_id.in_(ids)))
                await db.execute(delete(Mention).where(Mention.message_id.in_(ids)))
                # Tombstones keep their rows: their index terms must go explicitly.
                await db.execute(delete(SearchTerm).where(SearchTerm.message_id.in_(ids)))
                await db.execute(delete(Attachment).where(Attachment.message_id.in_(ids)))
            if total < LIVE_NOTICES:
                await self._announce(changed, info)
            total += len(ids)
