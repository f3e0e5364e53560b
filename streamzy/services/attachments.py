"""Attachments: upload into a room, claim for a message, fetch, purge the unclaimed.

Upload (both edges: the browser's composer and the bot API): the uploader must be a member
who may write in the room now (archived rooms and muted members are refused, as for a
message), within the ``uploads`` rate and their quota (the sum of their live attachments'
sizes). The type comes from the bytes (services/file_types.py); images are re-encoded
without metadata and get a thumbnail (services/images.py). Bytes, name and thumbnail are
sealed with the room's data key at its current version, behind the room lock every writer
of sealed content takes (services/key_versions.py). All CPU work (Pillow, Fernet over
megabytes) runs in worker threads, never on the event loop.

A message then carries up to MAX_PER_MESSAGE of the sender's own unclaimed uploads of the
same room: ``claim`` checks them when the message is submitted and the writer sets their
``message_id`` in the transaction that stores the message (services/attachment_links.py).
Unclaimed uploads older than ORPHAN_SECONDS are purged.

Fetch: only a current member of the room gets the file, and an unclaimed upload only its
uploader; everything else (unknown id, other room, removed member) is the same NotFound.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import LargeBinary, bindparam, text

from streamzy.clock import Clock
from streamzy.config import Rate
from streamzy.services.attachment_views import AttachmentView
from streamzy.services.errors import Invalid, NotFound, RateLimited, TooLarge, Unsupported
from streamzy.services.file_types import INLINE_TYPES, FileKind, sniff
from streamzy.services.images import ImageProblem, clean_image
from streamzy.services.key_versions import StaleKeyVersion, lock_room_version
from streamzy.services.message_state import _in_ids
from streamzy.services.rooms import RoomInfo, Rooms
from streamzy.storage.crypto import DataKey, Keyring
from streamzy.storage.db import Database, Tx
from streamzy.storage.models import UtcDateTime

Audit = Callable[..., Awaitable[None]]
CanWrite = Callable[[int, RoomInfo, Any], Awaitable[None]]
MAX_PER_MESSAGE = 4
MAX_NAME_CHARS = 200
ORPHAN_SECONDS = 3600
ORPHAN_PURGE_SECONDS = 600.0  # how often the server looks for them
RESEAL_ATTEMPTS = 3
UPLOAD_LIMIT = "uploads"
_NOT_FOUND = ("file_not_found", "No such file.")

_USED = text("SELECT COALESCE(SUM(size), 0) FROM attachments WHERE uploader_id = :user")
# A write on the uploader's row: concurrent uploads of one person take turns at the quota
# check (PostgreSQL row lock; SQLite has one writer anyway).
_LOCK_USER = text("UPDATE users SET id = id WHERE id = :user RETURNING id")
_INSERT = text(
    "INSERT INTO attachments (public_id, room_id, message_id, uploader_id, key_version, "
    "name_sealed, content_type, size, data, thumbnail, width, height, created_at) VALUES "
    "(:public_id, :room, NULL, :user, :version, :name, :type, :size, :data, :thumb, :width, "
    ":height, :now) RETURNING id").bindparams(
    bindparam("name", type_=LargeBinary), bindparam("data", type_=LargeBinary),
    bindparam("thumb", type_=LargeBinary), bindparam("now", type_=UtcDateTime))
_ROOM_VERSION = text("SELECT key_version FROM rooms WHERE id = :room")
# Membership is part of the lookup: a non-member cannot tell a file exists.
_FETCH_DATA = text(
    "SELECT a.room_id, a.key_version, a.name_sealed, a.content_type, a.data "
    "FROM attachments a JOIN memberships m ON m.room_id = a.room_id AND m.user_id = :user "
    "WHERE a.public_id = :public_id AND (a.message_id IS NOT NULL OR a.uploader_id = :user)")
_FETCH_THUMB = text(
    "SELECT a.room_id, a.key_version, a.name_sealed, a.content_type, a.thumbnail "
    "FROM attachments a JOIN memberships m ON m.room_id = a.room_id AND m.user_id = :user "
    "WHERE a.public_id = :public_id AND (a.message_id IS NOT NULL OR a.uploader_id = :user)")
_CLAIMABLE = ("SELECT a.id, a.public_id, a.room_id, a.key_version, a.name_sealed, "
              "a.content_type, a.size, a.width, a.height, "
              "CASE WHEN a.thumbnail IS NULL THEN 0 ELSE 1 END, a.message_id, "
              "m.sender_id, m.client_msg_id FROM attachments a "
              "LEFT JOIN messages m ON m.id = a.message_id "
              "WHERE a.uploader_id = :user AND a.room_id = :room AND a.public_id IN")
_ORPHANS = text("SELECT id FROM attachments WHERE message_id IS NULL AND created_at < :cutoff "
                "ORDER BY id LIMIT 200").bindparams(bindparam("cutoff", type_=UtcDateTime))
_DROP = text("DELETE FROM attachments WHERE id = :id AND message_id IS NULL RETURNING id")


@dataclass(frozen=True)
class Uploader:
    user_id: int
    is_bot: bool = False


@dataclass(frozen=True)
class FileOut:
    """A file as served: its bytes opened, its sniffed type, and how to present it."""

    name: str
    content_type: str
    data: bytes

    @property
    def inline(self) -> bool:
        return self.content_type in INLINE_TYPES


@dataclass(frozen=True)
class Claimed:
    """What a message will carry: row ids to link in its transaction, and their views."""

    ids: tuple[int, ...]
    views: tuple[AttachmentView, ...]


@dataclass(frozen=True)
class Prepared:
    kind: FileKind
    data: bytes
    width: int | None
    height: int | None
    thumbnail: bytes | None


def clean_name(raw: str) -> str:
    """A display name: the last path part, no control or format characters (bidi
    overrides), NFC, at most MAX_NAME_CHARS; "file" when nothing is left."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    name = name.strip()
    if name in ("", ".", ".."):
        return "file"
    return name[:MAX_NAME_CHARS]


def prepare(data: bytes) -> Prepared:
    """Sniff and (images) re-encode (blocking: run in a thread)."""
    kind = sniff(data)
    if kind is None:
        raise Unsupported("unsupported_file_type",
                          "This kind of file is not accepted: images (PNG, JPEG, GIF, "
                          "WebP), PDF, ZIP and plain text (UTF-8) are.")
    if not kind.is_image:
        return Prepared(kind, data, None, None, None)
    try:
        image = clean_image(data, kind)
    except ImageProblem as problem:
        raise Invalid(problem.code, problem.message) from None
    return Prepared(kind, image.data, image.width, image.height, image.thumbnail)


def _seal(key: DataKey, name: str, prepared: Prepared) -> tuple[bytes, bytes, bytes | None]:
    return (key.seal(name), key.seal_bytes(prepared.data),
            None if prepared.thumbnail is None else key.seal_bytes(prepared.thumbnail))


def _room_version(tx: Tx, room_id: int) -> int | None:
    rows = tx.rows(_ROOM_VERSION, {"room": room_id})
    return int(rows[0][0]) if rows else None


def _insert(tx: Tx, row: dict[str, Any], quota: int) -> int:
    """Behind the room lock: refuse a stale key version; behind the uploader's lock:
    the quota; then the row."""
    current = lock_room_version(tx, row["room"])
    if current is None:
        raise NotFound("unknown_room", "No such room.")
    if current != row["version"]:
        raise StaleKeyVersion({row["room"]: current})
    tx.rows(_LOCK_USER, {"user": row["user"]})
    used = int(tx.rows(_USED, {"user": row["user"]})[0][0] or 0)
    if used + row["size"] > quota:
        raise TooLarge("quota_exceeded", over_quota(quota))
    return int(tx.rows(_INSERT, row)[0][0])


def over_quota(quota: int) -> str:
    return (f"Your files take up your whole quota ({quota // (1024 * 1024)} MiB). Delete "
            "messages with files to make room.")


class Attachments:
    def __init__(self, db: Database, clock: Clock, keyring: Keyring, rooms: Rooms,
                 audit: Audit, audit_throttled: Audit, limiter: Any,
                 rates: Callable[[str], Rate], *, max_bytes: int, quota_bytes: int,
                 can_write: CanWrite | None = None) -> None:
        self._db = db
        self._clock = clock
        self._keyring = keyring
        self._rooms = rooms
        self._audit = audit
        self._audit_throttled = audit_throttled
        self._limiter = limiter
        self._rates = rates
        self._can_write = can_write
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        # One upload's insert at a time per process, and after each a pause as long as it
        # took: an insert of 13 MiB sealed holds the database's write lock for tens of
        # milliseconds, and back-to-back uploads must leave half of that lock's time to
        # the message writer's commits (benchmarks/upload_load.py).
        self._write_turn = asyncio.Lock()

    async def check_uploader(self, uploader: Uploader, room: RoomInfo, info: Any, *,
                             on: str) -> None:
        """Membership, the room's writing rules and the upload budget: before the edge
        reads a byte of the body."""
        await self._rooms.require_member(uploader.user_id, room.id, info, on=on)
        if self._can_write is not None:
            await self._can_write(uploader.user_id, room, info)
        decision = await self._limiter.hit(f"upload:{uploader.user_id}",
                                           self._rates(UPLOAD_LIMIT), rule=UPLOAD_LIMIT)
        if not decision.allowed:
            await self._audit_throttled(f"uploads:{uploader.user_id}", "rate_limited", info,
                                        uploader.user_id, limit=UPLOAD_LIMIT)
            raise RateLimited(UPLOAD_LIMIT, decision.retry_after,
                              message="You are uploading too fast.")

    def too_large(self) -> TooLarge:
        return TooLarge("file_too_large", f"Files are limited to "
                                          f"{self.max_bytes / (1024 * 1024):g} MiB.")

    async def used_bytes(self, user_id: int) -> int:
        return int((await self._db.read(lambda tx: tx.rows(_USED, {"user": user_id})))[0][0]
                   or 0)

    async def upload(self, uploader: Uploader, room: RoomInfo, name: str, data: bytes,
                     info: Any) -> AttachmentView:
        """Store one checked file (``check_uploader`` passed); its unclaimed view."""
        if not data:
            raise Invalid("empty_file", "The file is empty.")
        if len(data) > self.max_bytes:
            raise self.too_large()
        # Reading the body may have taken minutes: removed or banned meanwhile, no file.
        await self._rooms.require_member(uploader.user_id, room.id, info, on="upload")
        if await self.used_bytes(uploader.user_id) + len(data) > self.quota_bytes:
            raise TooLarge("quota_exceeded", over_quota(self.quota_bytes))
        name = clean_name(name)
        prepared = await asyncio.to_thread(prepare, data)
        row: dict[str, Any] = {
            "public_id": secrets.token_urlsafe(16), "room": room.id, "user": uploader.user_id,
            "type": prepared.kind.content_type, "size": len(prepared.data),
            "width": prepared.width, "height": prepared.height, "now": self._clock.now()}
        version = room.key_version
        for _attempt in range(RESEAL_ATTEMPTS):
            key = await self._keyring.data_key(room.id, version)
            if key is None:  # a cached room older than a finished rotation
                current = await self._db.read(_room_version, room.id)
                key = None if current is None else await self._keyring.data_key(room.id,
                                                                                 current)
                if current is None or key is None:
                    raise NotFound("unknown_room", "No such room.")
                version = current
            row["name"], row["data"], row["thumb"] = await asyncio.to_thread(
                _seal, key, name, prepared)
            row["version"] = version
            try:
                async with self._write_turn:
                    started = time.monotonic()
                    try:
                        await self._db.run_transaction(_insert, row, self.quota_bytes)
                    finally:
                        await asyncio.sleep(min(1.0, time.monotonic() - started))
                break
            except StaleKeyVersion as stale:
                version = stale.current[room.id]
        else:
            raise Invalid("store_failed", "The file could not be stored. Retry it.")
        await self._audit("attachment_uploaded", info, uploader.user_id, room_id=room.id,
                          attachment=row["public_id"], size=row["size"],
                          content_type=row["type"])
        return AttachmentView(row["public_id"], name, row["type"], row["size"], row["width"],
                              row["height"], prepared.thumbnail is not None)

    async def fetch(self, user_id: int, public_id: str, *, thumbnail: bool = False) -> FileOut:
        """The file for a current member of its room (an unclaimed one: its uploader only);
        NotFound for everything else, whatever the reason."""
        rows = await self._db.read(lambda tx: tx.rows(
            _FETCH_THUMB if thumbnail else _FETCH_DATA,
            {"user": user_id, "public_id": public_id}))
        if not rows or rows[0][4] is None:
            raise NotFound(*_NOT_FOUND)
        room_id, version, name_sealed, content_type, sealed = rows[0]
        key = await self._keyring.data_key(int(room_id), int(version))
        if key is None:
            raise NotFound(*_NOT_FOUND)

        def opened() -> tuple[str | None, bytes | None]:
            return key.open(bytes(name_sealed)), key.open_bytes(bytes(sealed))

        name, data = await asyncio.to_thread(opened)
        if name is None or data is None:
            raise NotFound(*_NOT_FOUND)
        return FileOut(name, "image/webp" if thumbnail else str(content_type), data)

    async def claim(self, sender_id: int, room_id: int, client_msg_id: str,
                    public_ids: list[str] | tuple[str, ...]) -> Claimed:
        """Check the files a message wants to carry: the sender's own uploads in this room,
        not carried by another message (a retry of the same message may name them again:
        the writer then answers with the original ack). NotFound names no reason."""
        wanted = list(dict.fromkeys(public_ids))
        if len(wanted) > MAX_PER_MESSAGE:
            raise Invalid("too_many_attachments",
                          f"A message carries at most {MAX_PER_MESSAGE} files.")
        def rows(tx: Tx) -> Any:
            params: dict[str, Any] = {"user": sender_id, "room": room_id}
            params.update({f"i{n}": v for n, v in enumerate(wanted)})
            return tx.rows(_in_ids(_CLAIMABLE, len(wanted)), params)

        found = {str(r[1]): r for r in await self._db.read(rows)}
        ids: list[int] = []
        views: list[AttachmentView] = []
        for public_id in wanted:
            row = found.get(public_id)
            if row is None:
                raise NotFound("attachment_not_found", "A file of this message is not "
                                                       "yours to send here (or is gone).")
            (row_id, _pid, room, version, sealed, content_type, size, width, height, thumb,
             message_id, msg_sender, msg_client_id) = row
            if message_id is not None and (msg_sender != sender_id
                                           or msg_client_id != client_msg_id):
                raise NotFound("attachment_not_found", "A file of this message was already "
                                                       "sent with another message.")
            name = await self._keyring.open(int(room), int(version), bytes(sealed))
            if message_id is None:
                ids.append(int(row_id))
            views.append(AttachmentView(public_id, name or "file", str(content_type),
                                        int(size), width, height, bool(thumb)))
        return Claimed(tuple(ids), tuple(views))

    async def purge_orphans(self, info: Any) -> int:
        """Remove uploads no message claimed within ORPHAN_SECONDS, a few at a time."""
        cutoff = self._clock.now() - timedelta(seconds=ORPHAN_SECONDS)
        total = 0
        while True:
            ids = [int(r[0]) for r in await self._db.read(
                lambda tx: tx.rows(_ORPHANS, {"cutoff": cutoff}))]
            if not ids:
                break

            def drop(tx: Tx, ids: list[int] = ids) -> int:
                return sum(len(tx.rows(_DROP, {"id": i})) for i in ids)

            total += await self._db.run_transaction(drop)
            if len(ids) < 200:
                break
        if total:
            await self._audit("attachments_purged", info, None, orphans=total)
        return total
