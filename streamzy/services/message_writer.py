"""Storing messages: validate -> seal -> group commit -> ack -> publish.

A message is acknowledged only after the transaction holding it has committed. Messages
that arrive together are written in one transaction (group commit): each sender still
waits for its own row to be durable, but the database sees one commit per batch. Each
committed batch is published as MessagesStored on the event bus, in (room, seq) order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from streamzy.clock import Clock
from streamzy.metrics import Metrics
from streamzy.services.attachment_links import AttachmentTaken
from streamzy.services.attachments import Claimed
from streamzy.services.content import clean_message, suspicious_pattern
from streamzy.services.errors import Conflict, Invalid, NotFound, ServiceError
from streamzy.services.events import EventBus, MessagesStored
from streamzy.services.key_versions import StaleKeyVersion
from streamzy.services.mentions import resolve_mentions
from streamzy.services.message_batch import (
    MAX_BATCH,
    Pending,
    Sender,
    SendResult,
    Stored,
    write_batch,
)
from streamzy.services.message_state import (
    MessageReader,
    Person,
    ReplyPreview,
    StoredMessage,
    excerpt,
    one_message,
)
from streamzy.services.rooms import RoomInfo, room_members
from streamzy.services.search_index import blind_terms, blinder
from streamzy.storage.crypto import Keyring, KeyUnavailable
from streamzy.storage.db import Database, Tx

log = logging.getLogger("streamzy.messages")
DM_MEMBERS_SECONDS = 10.0
RESEAL_ATTEMPTS = 3
Audit = Callable[..., Awaitable[None]]
BatchObserver = Callable[[int, float], None]


BLOCKED_MESSAGE = ("This message looks like HTML markup or a script link, which this server "
                   "does not accept. Put code in `backticks`, or rephrase it.")


class StoreUnavailable(ServiceError):
    kind = "unavailable"


_ROOM_VERSION = text("SELECT key_version FROM rooms WHERE id = :room")


def _room_version(tx: Tx, room_id: int) -> int | None:
    rows = tx.rows(_ROOM_VERSION, {"room": room_id})
    return int(rows[0][0]) if rows else None


def retry_conflict() -> Conflict:
    return Conflict("conflict", "This client_msg_id was already used for a different message. "
                                "Send a new message with a new id.")


def _answer(item: Pending, duplicate_of: SendResult | None) -> None:
    """Resolve a retry: the original ack, or (None) a conflict."""
    if item.future.done():
        return
    if duplicate_of is None:
        item.future.set_exception(retry_conflict())
    else:
        item.future.set_result(duplicate_of)


class MessageWriter:
    """Validates, seals and queues messages; one task writes them in group commits."""

    def __init__(self, db: Database, clock: Clock, keyring: Keyring, audit: Audit,
                 events: EventBus, *, max_chars: int, suspicious: str = "block",
                 metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._keyring = keyring
        self._audit = audit
        self.max_chars = max_chars
        self.block_suspicious = suspicious == "block"
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._events = events
        self._observers: list[BatchObserver] = []
        self._checks: set[asyncio.Task[None]] = set()  # retries being compared, referenced
        self._reader = MessageReader(keyring, audit)
        self._dm_cache: dict[int, tuple[float, tuple[int, ...]]] = {}
        # Rooms' key versions learnt from refused writes (newer than a cached RoomInfo).
        self._versions: dict[int, int] = {}

    def observe_batches(self, observer: BatchObserver) -> None:
        """Call ``observer(batch size, wall ms)`` after every group-commit transaction
        (benchmarks and diagnostics; not on any hot path unless one is registered)."""
        self._observers.append(observer)

    async def send(self, sender: Sender, room: RoomInfo, client_msg_id: str, text: str,
                   info: Any, *, reply_to: int | None = None) -> SendResult:
        """Validate, seal and durably store one message; returns its id and sequence."""
        return await (await self.submit(sender, room, client_msg_id, text, info,
                                        reply_to=reply_to))

    async def check_text(self, sender: Sender, room: RoomInfo, text: str, info: Any) -> str:
        """The cleaned text, or Invalid (a hostile pattern is audited): the rules every
        text a person writes passes, whether sent or edited."""
        text, problem = clean_message(text, self.max_chars)
        if problem is not None:
            raise Invalid(problem.code, problem.message)
        pattern = suspicious_pattern(text)
        if pattern is not None:
            event = "message_blocked" if self.block_suspicious else "message_flagged"
            await self._audit(event, info, sender.user_id, room_id=room.id, pattern=pattern,
                              length=len(text))
            if self.block_suspicious:
                raise Invalid("blocked", BLOCKED_MESSAGE)
        return text

    async def _reply_preview(self, room: RoomInfo, reply_to: int, info: Any) -> ReplyPreview:
        rows, mentions, reactions = await self._db.read(one_message, room.id, reply_to)
        if not rows:
            raise NotFound("reply_not_found", "The message you reply to is not in this room.")
        parent = (await self._reader.open_rows(rows, mentions, reactions, info))[0]
        return ReplyPreview(parent.id, parent.seq, None if parent.sender_id is None else
                            Person(parent.sender_id, parent.username, parent.display_name,
                                   parent.is_bot),
                            excerpt(parent.text), parent.deleted)

    async def _dm_members(self, room: RoomInfo) -> tuple[int, ...]:
        """A DM's people (each gets a notice of a new message wherever they are), kept for
        DM_MEMBERS_SECONDS: who is in a DM seldom changes."""
        if not room.is_dm:
            return ()
        now = time.monotonic()
        cached = self._dm_cache.get(room.id)
        if cached is None or now - cached[0] > DM_MEMBERS_SECONDS:
            if len(self._dm_cache) > 10_000:
                self._dm_cache.clear()
            rows = await self._db.read(room_members, room.id)
            cached = self._dm_cache[room.id] = (now, tuple(int(r[0]) for r in rows))
        return cached[1]

    async def submit(self, sender: Sender, room: RoomInfo, client_msg_id: str, text: str,
                     info: Any, *, reply_to: int | None = None,
                     files: Claimed | None = None) -> asyncio.Future[SendResult]:
        """Validate, seal and queue one message; the future resolves once it is durable.

        Messages are stored in the order they are submitted, so a caller that submits
        one sender's messages in order gets them stored (and sequenced) in that order.
        ``files`` (checked by ``Attachments.claim``) are linked in the same transaction;
        a message with files may have no text.
        """
        if files is not None and files.views and not text.strip():
            text = ""
        else:
            text = await self.check_text(sender, room, text, info)
        reply = None if reply_to is None else await self._reply_preview(room, reply_to, info)
        mentions, whole_room = ((), False) if "@" not in text else await resolve_mentions(
            self._db, room.id, text, sender.user_id)
        version = max(room.key_version, self._versions.get(room.id, 0))
        try:
            ciphertext = await self._keyring.seal(room.id, version, text)
        except KeyUnavailable:
            # A cached room older than a finished rotation (its version destroyed): the
            # room's current version, from the database.
            current = await self._db.read(_room_version, room.id)
            if current is None or current == version:
                raise
            version = self._versions[room.id] = current
            ciphertext = await self._keyring.seal(room.id, version, text)
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        terms = await self._search_terms(room.id, version, text)
        self._ensure_writer()
        pending = Pending(sender, room.id, client_msg_id, text, version, ciphertext, future,
                          reply, mentions, whole_room, room.name, await self._dm_members(room),
                          search_terms=terms)
        if files is not None:
            pending.attachments, pending.files = files.ids, files.views
        self._queue.put_nowait(pending)
        return future

    async def _search_terms(self, room_id: int, version: int, text: str) -> tuple[str, ...]:
        """The message's blind index terms under its key version (tens of HMACs: a few
        tens of microseconds, cheaper inline than a thread hop)."""
        key = await self._keyring.data_key(room_id, version)
        return () if key is None else blind_terms(blinder(key), text)

    def _ensure_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="message-writer")

    async def close(self) -> None:
        for task in list(self._checks):
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                stored = await self._write(batch)
            except (IntegrityError, AttachmentTaken):
                # A concurrent writer (another process) took one of our client ids, or
                # another message one of our files: write one by one so each gets its
                # own answer.
                stored = []
                for item in batch:
                    try:
                        stored.extend(await self._write([item]))
                    except Exception as exc:
                        self._fail([item], exc)
            except Exception as exc:
                self._fail(batch, exc)
                continue
            if stored:  # subscribers' trouble is logged by the bus, never lost here
                self._metrics.messages_stored(len(stored))
                await self._events.publish(MessagesStored(tuple(stored)))

    def _fail(self, batch: list[Pending], exc: BaseException) -> None:
        if isinstance(exc, AttachmentTaken):
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(NotFound(
                        "attachment_not_found", "A file of this message was already sent "
                                                "with another message (or is gone)."))
            return
        log.warning("message store failed: %s", type(exc).__name__)
        for item in batch:
            if not item.future.done():
                item.future.set_exception(StoreUnavailable(
                    "store_failed", "The message could not be stored. Retry it."))

    async def _write(self, batch: list[Pending]) -> list[StoredMessage]:
        now = self._clock.now()
        started = time.perf_counter()
        try:
            for _attempt in range(RESEAL_ATTEMPTS):
                try:
                    existing, by_room, rows, ids = await self._db.run_transaction(
                        write_batch, batch, now)
                    break
                except StaleKeyVersion as stale:
                    await self._reseal(batch, stale.current)
            else:
                raise StoreUnavailable("store_failed", "The message could not be stored. "
                                                       "Retry it.")
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.commit(len(batch), elapsed)
            for observe in self._observers:
                observe(len(batch), elapsed * 1000)
        # Committed: now, and only now, acknowledge.
        stored: list[StoredMessage] = []
        written: dict[tuple[int, str], tuple[Pending, SendResult]] = {}
        fresh_items = [item for items in by_room.values() for item in items]
        for item, row, new_id in zip(fresh_items, rows, ids, strict=True):
            result = SendResult(new_id, row["seq"], False)
            written[(item.sender.user_id, item.client_msg_id)] = (item, result)
            stored.append(StoredMessage(
                new_id, item.room_id, row["seq"], item.sender.user_id, item.sender.username,
                item.sender.display_name, item.client_msg_id, item.text, now,
                item.sender.is_bot, reply=item.reply, mentions=item.mentions,
                mentions_room=item.mentions_room,
                reply_to_id=item.reply.id if item.reply is not None else None,
                room_name=item.room_name, dm_members=item.dm_members,
                attachments=item.files))
            if not item.future.done():
                item.future.set_result(result)
        fresh_ids = {id(item) for item in fresh_items}
        earlier: list[tuple[Pending, Stored]] = []
        for item in batch:
            if id(item) in fresh_ids:
                continue
            pair = (item.sender.user_id, item.client_msg_id)
            if pair in written:  # the same id twice in this batch: both texts are at hand
                first, result = written[pair]
                same = first.room_id == item.room_id and first.text == item.text
                _answer(item, SendResult(result.id, result.seq, True) if same else None)
            else:
                earlier.append((item, existing[pair]))
        if earlier:
            # Retries of rows stored before: their text is sealed, so comparing it means
            # opening it. Only retried ids pay for that, and off the writer's loop.
            task = asyncio.create_task(self._answer_retries(earlier), name="retry-check")
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        stored.sort(key=lambda m: (m.room_id, m.seq))
        return stored

    async def _reseal(self, batch: list[Pending], current: dict[int, int]) -> None:
        """A rotation moved these rooms to a new key version since their messages were
        sealed: seal them again with it (the refused transaction wrote nothing)."""
        if len(self._versions) > 10_000:
            self._versions.clear()
        self._versions.update(current)
        for item in batch:
            version = current.get(item.room_id)
            if version is not None and item.key_version != version:
                item.ciphertext = await self._keyring.seal(item.room_id, version, item.text)
                item.key_version = version
                item.search_terms = await self._search_terms(item.room_id, version, item.text)

    async def _answer_retries(self, retries: list[tuple[Pending, Stored]]) -> None:
        """The original ack for a retry with the same room and text; a conflict otherwise.

        A stored row that no longer opens (its room key destroyed) cannot be compared:
        the retry gets the original ack, as the id is taken and nothing new can be stored.
        """
        opened: dict[int, str | None] = {}
        try:
            for item, row in retries:
                if row.result.id not in opened:
                    opened[row.result.id] = await self._keyring.open(
                        row.room_id, row.key_version, row.ciphertext)
                text = opened[row.result.id]
                same = row.room_id == item.room_id and (text is None or text == item.text)
                _answer(item, row.result if same else None)
        except Exception as exc:  # never leave a sender without an answer
            self._fail([item for item, _ in retries], exc)
