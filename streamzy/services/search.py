"""Searching the rooms a person belongs to, through the blind index.

The query is normalised like stored text (services/search_tokens.py); each query word is
blinded under every live key version of every room the person is a current member of
(not banned), and the index is asked, newest first, for messages holding all of them.
Those messages are decrypted and checked against the words (a prefix entry also stands
for longer words; the index is a filter, the text decides), and deleted ones are skipped.

The plan: one branch per (room, key version), each an index range scan on
``ix_search_terms_term (term, message_id)`` read backwards from the cursor with a LIMIT,
the other words checked per row by primary-key lookups (``(message_id, term)``); the
branches are joined with UNION ALL (a bounded number per statement) and merged here. The
work is bounded by (rooms x versions x page size) index entries, however common the
words, rather than by how many messages hold them. Pages go back by message id (ids only
grow, so newest first is id descending): ``before`` is the cursor.

Queries are content: they are never logged or audited, and held only in memory.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text

from streamzy.clock import Clock, as_utc
from streamzy.services.errors import Invalid
from streamzy.services.message_state import Person
from streamzy.services.search_index import Blind, blinder
from streamzy.services.search_tokens import Query, parse_query, snippet
from streamzy.storage.crypto import DataKey, Keyring, KeyUnavailable
from streamzy.storage.db import Database, Tx
from streamzy.storage.sqlite import read_datetime

MAX_QUERY_CHARS = 200
MAX_LIMIT = 50
BRANCHES = 100  # per statement: SQLite allows 500 terms in a compound SELECT
ROUNDS = 5  # candidate pages checked before answering with what was found
NO_CURSOR = 2**62

_ROOMS = ("SELECT r.id, r.name, r.kind, k.version FROM memberships m "
          "JOIN rooms r ON r.id = m.room_id "
          "JOIN room_keys k ON k.room_id = r.id AND k.wrapped_key IS NOT NULL "
          "WHERE m.user_id = :user AND r.kind <> 'deleted'")
ROOMS = text(_ROOMS)
ROOM_NAMED = text(_ROOMS + " AND r.name = :name")  # nosemgrep: sql-text-built-from-strings - constants only
BANS = text("SELECT room_id, until FROM room_bans WHERE user_id = :user")


@dataclass(frozen=True)
class SearchHit:
    message_id: int
    room_id: int
    room_name: str
    room_kind: str
    seq: int
    sender: Person | None
    created_at: datetime
    snippet: str


@dataclass(frozen=True)
class SearchPage:
    hits: list[SearchHit]
    next_before: int | None  # pass as ``before`` for the next (older) page; None: no more


@dataclass(frozen=True)
class _Scope:
    room_id: int
    room_name: str
    room_kind: str
    version: int
    key: DataKey


def check_query(raw: Any) -> Query:
    """The parsed query, or Invalid with a stable code."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("empty_query", "Type something to search for.")
    if len(raw) > MAX_QUERY_CHARS:
        raise Invalid("query_too_long", f"A search is at most {MAX_QUERY_CHARS} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in raw):
        raise Invalid("invalid_query", "The search contains characters that cannot be searched.")
    query = parse_query(raw)
    if query is None:
        raise Invalid("query_too_short", "Search for words of at least 3 letters or digits.")
    return query


@lru_cache(maxsize=512)
def _candidates(branches: int, others: int) -> TextClause:
    """Per (room, version): the newest ids holding the driving term and every other term."""
    parts = []
    for i in range(branches):
        # A scalar subquery with LIMIT, not EXISTS: PostgreSQL turns EXISTS into a hash
        # semi-join that reads every row of both terms; this stays a primary-key lookup per
        # candidate, so the LIMIT stops the backwards index scan early (SQLite alike).
        exists = "".join(
            f" AND (SELECT 1 FROM search_terms x{j} WHERE x{j}.message_id"  # noqa: S608 - ints only  # nosec B608
            f" = s.message_id AND x{j}.term = :o{i}_{j} LIMIT 1) IS NOT NULL"
            for j in range(others))
        parts.append(
            f"SELECT message_id FROM (SELECT s.message_id FROM search_terms s "  # noqa: S608 - ints only  # nosec B608
            f"WHERE s.term = :d{i} AND s.message_id < :before{exists} "
            f"ORDER BY s.message_id DESC LIMIT :n) b{i}")
    # Built from constants and integers only; every value is a bound parameter.
    return text(" UNION ALL ".join(parts))  # nosemgrep: sql-text-built-from-strings - constants and ints


@lru_cache(maxsize=256)
def _messages(count: int) -> TextClause:
    holes = ", ".join(f":i{n}" for n in range(count))
    # Built from constants and integers only; every value is a bound parameter.
    return text(  # nosemgrep: sql-text-built-from-strings - constants and ints
        "SELECT m.id, m.room_id, m.seq, m.sender_id, m.key_version, m.ciphertext, "  # noqa: S608 - constants, ints  # nosec B608
        "m.created_at, m.deleted_at, u.username, u.display_name, u.is_bot "
        f"FROM messages m LEFT JOIN users u ON u.id = m.sender_id WHERE m.id IN ({holes})")


def _scopes(tx: Tx, user_id: int, room: str | None) -> tuple[Sequence[Sequence[Any]],
                                                             Sequence[Sequence[Any]]]:
    rows = (tx.rows(ROOMS, {"user": user_id}) if room is None
            else tx.rows(ROOM_NAMED, {"user": user_id, "name": room}))
    return rows, tx.rows(BANS, {"user": user_id})


def _round(tx: Tx, branches: list[tuple[str, tuple[str, ...]]], before: int,
           n: int) -> tuple[list[int], Sequence[Sequence[Any]]]:
    """One snapshot: the newest ``n`` candidate ids before the cursor, and their rows."""
    found: set[int] = set()
    for start in range(0, len(branches), BRANCHES):
        part = branches[start:start + BRANCHES]
        params: dict[str, Any] = {"before": before, "n": n}
        for i, (driver, others) in enumerate(part):
            params[f"d{i}"] = driver
            for j, other in enumerate(others):
                params[f"o{i}_{j}"] = other
        found.update(int(row[0]) for row in tx.rows(
            _candidates(len(part), len(part[0][1])), params))
    ids = sorted(found, reverse=True)[:n]
    if not ids:
        return [], []
    return ids, tx.rows(_messages(len(ids)), {f"i{k}": v for k, v in enumerate(ids)})


class Search:
    def __init__(self, db: Database, keyring: Keyring, clock: Clock) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def _scopes(self, user_id: int, room: str | None) -> list[_Scope]:
        """The (room, live key version) pairs the person may search now."""
        rows, bans = await self._db.read(_scopes, user_id, room)
        now = as_utc(self._clock.now())
        banned = {int(r) for r, until in bans
                  if until is None or as_utc(read_datetime(until)) > now}
        pairs = [(int(r), int(v)) for r, _n, _k, v in rows if int(r) not in banned]
        await self._keyring.load_many(pairs)
        scopes = []
        for room_id, name, kind, version in rows:
            if int(room_id) in banned:
                continue
            try:
                key = await self._keyring.data_key(int(room_id), int(version))
            except KeyUnavailable:  # no configured master key opens it: nothing to find
                continue
            if key is not None:
                scopes.append(_Scope(int(room_id), str(name), str(kind or "room"),
                                     int(version), key))
        return scopes

    async def search(self, user_id: int, raw_query: Any, room: str | None = None,
                     before: int | None = None, limit: int = 20) -> SearchPage:
        """Messages in the person's rooms holding every query word (the last one as a
        prefix), newest first, at most ``limit``; ``before`` continues a previous page."""
        query = check_query(raw_query)
        limit = max(1, min(MAX_LIMIT, int(limit)))
        cursor = NO_CURSOR if before is None or before <= 0 else int(before)
        scopes = await self._scopes(user_id, room[:64] if room else None)
        if not scopes:
            return SearchPage([], None)
        lookups = query.lookups
        driver = max(range(len(lookups)), key=lambda i: (len(lookups[i]), i))
        branches: list[tuple[str, tuple[str, ...]]] = []
        blinds: dict[tuple[int, int], Blind] = {}
        by_scope: dict[tuple[int, int], _Scope] = {}
        for scope in scopes:
            pair = (scope.room_id, scope.version)
            blind = blinds[pair] = blinder(scope.key)
            by_scope[pair] = scope
            terms = [blind(term) for term in lookups]
            branches.append((terms[driver], tuple(t for i, t in enumerate(terms)
                                                  if i != driver)))
        hits: list[SearchHit] = []
        n = limit + 1
        for _round_no in range(ROUNDS):
            ids, rows = await self._db.read(_round, branches, cursor, n)
            if not ids:
                return SearchPage(hits, None)
            by_id = {int(row[0]): row for row in rows}
            # Decrypting and re-checking a round (up to ~800 messages at the last) is CPU
            # work: in a thread, not on the event loop.
            checked = await asyncio.to_thread(self._check_round, ids, by_id, by_scope, query)
            for message_id, hit in checked:
                cursor = message_id
                if hit is not None:
                    hits.append(hit)
                    if len(hits) == limit:
                        return SearchPage(hits, message_id)
            if len(ids) < n:
                return SearchPage(hits, None)
            n *= 2  # mostly false positives so far: look further at once
        return SearchPage(hits, cursor)

    @classmethod
    def _check_round(cls, ids: Sequence[int], by_id: dict[int, Sequence[Any]],
                     scopes: dict[tuple[int, int], _Scope],
                     query: Query) -> list[tuple[int, SearchHit | None]]:
        return [(i, None if (row := by_id.get(i)) is None else cls._check(row, scopes, query))
                for i in ids]

    @staticmethod
    def _check(row: Sequence[Any], scopes: dict[tuple[int, int], _Scope],
               query: Query) -> SearchHit | None:
        (message_id, room_id, seq, sender_id, version, sealed, created_at, deleted_at,
         username, display_name, is_bot) = row
        scope = scopes.get((int(room_id), int(version)))
        if scope is None or deleted_at is not None or not sealed:
            return None
        plain = scope.key.open(bytes(sealed))
        if plain is None or not query.matches(plain):
            return None
        sender = None if sender_id is None else Person(int(sender_id), username or "",
                                                       display_name or "", bool(is_bot))
        return SearchHit(int(message_id), scope.room_id, scope.room_name, scope.room_kind,
                         int(seq), sender, read_datetime(created_at), snippet(plain, query))
