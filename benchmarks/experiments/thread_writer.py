"""Experiment: the group-commit transaction in one thread hop, on a synchronous sqlite3
connection (SQLAlchemy Core), instead of one aiosqlite round trip per call.

aiosqlite runs every cursor call (execute, fetch, commit, close, the pool's reset) on its
own thread and returns through call_soon_threadsafe, so one batch of three statements costs
a dozen or more thread round trips and event-loop wake-ups. Here the writer task hands the
whole batch to one worker thread with ``asyncio.to_thread`` and gets the ids back at once.
Same statements, same transaction, same acknowledgement after commit.

Not used by Streamzy: installed by ``benchmarks/experiments/streamzy_tuned.py`` and by
``benchmarks/micro_send.py --what-if thread`` so its effect can be measured.
"""

from __future__ import annotations

import asyncio
from typing import Any


def install(messages: Any, db_url: str, autocheckpoint: bool = True) -> None:
    """The batch transaction as one blocking function in one thread hop (sqlite3 via a sync
    Core engine), instead of one aiosqlite thread round trip per call."""
    from sqlalchemy import create_engine, event, insert, select, tuple_, update

    from streamzy.services.messages import SendResult, StoredMessage
    from streamzy.storage.db import _sqlite_pragmas
    from streamzy.storage.models import Message, Room

    if not db_url.startswith("sqlite+aiosqlite://"):
        return  # PostgreSQL (asyncpg) has no thread hops to save
    url = db_url.replace("sqlite+aiosqlite://", "sqlite://", 1)
    engine = create_engine(url, pool_size=1, max_overflow=0, pool_reset_on_return=None,
                           connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    if not autocheckpoint:
        event.listen(engine, "connect",
                     lambda dbapi, _rec: dbapi.execute("PRAGMA wal_autocheckpoint=0"))
    msg, room_t = Message.__table__, Room.__table__
    returning = insert(msg).returning(msg.c.id, sort_by_parameter_order=True)

    def write_sync(batch: list[Any], now: Any) -> tuple[dict[Any, Any], dict[int, list[Any]],
                                                          list[dict[str, Any]], list[int]]:
        with engine.begin() as conn:
            pairs = list({(p.sender.user_id, p.client_msg_id) for p in batch})
            existing = {(r.sender_id, r.client_msg_id): SendResult(r.id, r.seq, True)
                        for r in conn.execute(select(
                            msg.c.id, msg.c.seq, msg.c.sender_id, msg.c.client_msg_id)
                            .where(tuple_(msg.c.sender_id, msg.c.client_msg_id).in_(pairs)))}
            fresh, seen = [], set()
            for item in batch:
                pair = (item.sender.user_id, item.client_msg_id)
                if pair not in existing and pair not in seen:
                    seen.add(pair)
                    fresh.append(item)
            by_room: dict[int, list[Any]] = {}
            for item in fresh:
                by_room.setdefault(item.room_id, []).append(item)
            rows: list[dict[str, Any]] = []
            for room_id, items in by_room.items():
                last = conn.execute(
                    update(room_t).where(room_t.c.id == room_id)
                    .values(last_seq=room_t.c.last_seq + len(items))
                    .returning(room_t.c.last_seq)).scalar_one()
                first = last - len(items) + 1
                rows += [{"room_id": room_id, "seq": first + k, "sender_id": i.sender.user_id,
                          "client_msg_id": i.client_msg_id, "key_version": i.key_version,
                          "ciphertext": i.ciphertext, "created_at": now}
                         for k, i in enumerate(items)]
            ids = [r[0] for r in conn.execute(returning, rows)] if rows else []
        return existing, by_room, rows, ids

    async def write(batch: list[Any]) -> list[Any]:
        now = messages._clock.now()
        existing, by_room, rows, ids = await asyncio.to_thread(write_sync, batch, now)
        stored, results = [], dict(existing)
        fresh_items = [i for items in by_room.values() for i in items]
        for item, row, new_id in zip(fresh_items, rows, ids, strict=True):
            results[(item.sender.user_id, item.client_msg_id)] = SendResult(new_id, row["seq"],
                                                                           False)
            stored.append(StoredMessage(new_id, item.room_id, row["seq"], item.sender.user_id,
                                        item.sender.username, item.sender.display_name,
                                        item.client_msg_id, item.text, now, item.sender.is_bot))
        fresh_ids = {id(i) for i in fresh_items}
        for item in batch:
            result = results[(item.sender.user_id, item.client_msg_id)]
            if id(item) not in fresh_ids:
                result = SendResult(result.id, result.seq, True)
            if not item.future.done():
                item.future.set_result(result)
        stored.sort(key=lambda m: (m.room_id, m.seq))
        return stored

    messages._write = write
