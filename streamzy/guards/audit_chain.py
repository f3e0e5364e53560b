"""The audit trail's hash chain: what each row's ``chain`` value is and how a row is appended.

Every row's ``chain`` (64 hex digits) is two keyed SHA-256 HMACs, 128 bits each:

* the row tag, over a canonical encoding of the row alone (id, time, event, user id, IP,
  user agent, request id, detail): it proves the row's content is what we wrote;
* the link, over the previous row's whole chain value and this row's tag: it proves which
  row came before.

Splitting the value in two is what lets verification say *what* happened, not only where:
a row whose tag fails was edited (or forged); a row whose tag holds but whose link fails
lost its predecessor (deleted rows). The key is derived from STREAMZY_SECRET_KEY with a
fixed purpose label, so write access to the database alone cannot compute a valid value.

Appends are serialized across processes and connections by the chain head (last id and
chain value, in ``system_state``): its row is locked, by an UPDATE, as the first statement
of the transaction that inserts the row, so the chain never forks. (An UPDATE first also
takes SQLite's write lock before any read, so no deferred transaction has to upgrade.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import text

from streamzy.storage.db import Tx
from streamzy.storage.sqlite import read_datetime
from streamzy.storage.system_state import AUDIT_ANCHOR, AUDIT_HEAD

PURPOSE = b"streamzy/audit-chain/v1"
GENESIS = "0" * 64  # the "previous chain value" of the very first row
TAG_HEX = 32  # 128-bit row tag, then 128-bit link


def derive_key(secret_key: str) -> bytes:
    """The chain key: HKDF-SHA256 of STREAMZY_SECRET_KEY with a purpose label of its own,
    so it is never the key that signs anything else."""
    if not secret_key:
        raise ValueError("the audit chain needs STREAMZY_SECRET_KEY")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=PURPOSE).derive(secret_key.encode("utf-8"))


def _mac(key: bytes, label: bytes, *parts: bytes) -> str:
    return hmac.new(key, label + b"\x00" + b"\x00".join(parts), hashlib.sha256).hexdigest()


def utc_text(at: Any) -> str:
    """A timestamp as the chain encodes it (UTC, microseconds), from either driver."""
    return read_datetime(at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ChainRow:
    """The columns the chain covers, plus the stored chain value."""

    id: int
    at: Any  # a datetime (or SQLite's text of one)
    event: str
    user_id: int | None
    client_ip: str
    user_agent: str
    request_id: str
    detail: str
    chain: str | None = None

    def canonical(self) -> bytes:
        return json.dumps([self.id, utc_text(self.at), self.event, self.user_id,
                           self.client_ip, self.user_agent, self.request_id, self.detail],
                          ensure_ascii=True, separators=(",", ":")).encode("ascii")


def row_tag(key: bytes, row: ChainRow) -> str:
    return _mac(key, b"row", row.canonical())[:TAG_HEX]


def link(key: bytes, previous: str, tag: str) -> str:
    return _mac(key, b"link", previous.encode("ascii"), tag.encode("ascii"))[:TAG_HEX]


def chain_value(key: bytes, previous: str, row: ChainRow) -> str:
    """The ``chain`` value of ``row`` after a row whose chain value is ``previous``."""
    tag = row_tag(key, row)
    return tag + link(key, previous, tag)


def tag_holds(key: bytes, row: ChainRow) -> bool:
    """Is the row's content what was chained (its own tag matches)?"""
    stored = row.chain or ""
    return len(stored) == 2 * TAG_HEX and hmac.compare_digest(stored[:TAG_HEX],
                                                              row_tag(key, row))


def link_holds(key: bytes, previous: str, row: ChainRow) -> bool:
    """Does the row follow the row whose chain value is ``previous``?"""
    stored = row.chain or ""
    return (len(stored) == 2 * TAG_HEX and tag_holds(key, row)
            and hmac.compare_digest(stored[TAG_HEX:], link(key, previous, stored[:TAG_HEX])))


@dataclass(frozen=True)
class Mark:
    """A point of the chain kept in ``system_state``: the head (the last row appended) or
    the anchor (where verification starts: the last purged row, or the last row written
    before the chain existed). Sealed with its own MAC label, so neither can be forged nor
    passed off as the other."""

    id: int
    chain: str
    restored: bool = False  # head only: it was missing and was rebuilt from the last row

    def encode(self, key: bytes, label: bytes) -> str:
        value: dict[str, Any] = {"id": self.id, "chain": self.chain,
                                 "restored": self.restored}
        value["mac"] = _mac(key, label, str(self.id).encode(), self.chain.encode(),
                            b"1" if self.restored else b"0")
        return json.dumps(value, sort_keys=True)

    @classmethod
    def decode(cls, key: bytes, label: bytes, text_value: str | None) -> Mark | None:
        """The mark, or None when it is missing, malformed or its MAC fails."""
        try:
            value = json.loads(text_value or "")
            mark = cls(int(value["id"]), str(value["chain"]), bool(value.get("restored")))
            expected = _mac(key, label, str(mark.id).encode(), mark.chain.encode(),
                            b"1" if mark.restored else b"0")
            if hmac.compare_digest(str(value["mac"]), expected):
                return mark
        except (ValueError, KeyError, TypeError):
            pass
        return None


HEAD_LABEL = b"head"
ANCHOR_LABEL = b"anchor"
START = Mark(0, GENESIS)  # no anchor: verification starts before the first row

_LOCK_HEAD = text("UPDATE system_state SET updated_at = :at WHERE name = :name RETURNING value")
_CREATE_STATE = text("INSERT INTO system_state (name, value, updated_at) "
                     "VALUES (:name, :value, :at) ON CONFLICT (name) DO NOTHING RETURNING value")
_WRITE_STATE = text("UPDATE system_state SET value = :value, updated_at = :at "
                    "WHERE name = :name RETURNING name")
_LAST_ROW = text("SELECT id, chain FROM audit_events ORDER BY id DESC LIMIT 1")
_ANY_CHAINED = text("SELECT id FROM audit_events WHERE chain IS NOT NULL LIMIT 1")
_READ_STATE = text("SELECT value FROM system_state WHERE name = :name")
_INSERT = text("INSERT INTO audit_events (at, event, user_id, client_ip, user_agent, "
               "request_id, detail) VALUES (:at, :event, :user_id, :client_ip, :user_agent, "
               ":request_id, :detail) RETURNING id")
_INSERT_CHAINED = text("INSERT INTO audit_events (id, at, event, user_id, client_ip, user_agent, "
                       "request_id, detail, chain) VALUES (:id, :at, :event, :user_id, "
                       ":client_ip, :user_agent, :request_id, :detail, :chain) RETURNING id")
_MAX_ID = text("SELECT max(id) FROM audit_events")
_SET_CHAIN = text("UPDATE audit_events SET chain = :chain WHERE id = :id RETURNING id")


def _first_head(tx: Tx, key: bytes, at: datetime) -> str | None:
    """The head for a database that has none; None when another writer created it first.

    No chained row and no anchor: the chain starts now, and any rows already there were
    written before it existed (legacy): the anchor is put after them, so verification
    counts them as not covered instead of failing on them. Chained rows but no head: it
    was deleted; the chain continues from the last row, and the head says it was restored,
    which verification reports (a head never goes missing on its own).
    """
    last = tx.rows(_LAST_ROW, {})
    chained = tx.rows(_ANY_CHAINED, {})
    found = tx.rows(_READ_STATE, {"name": AUDIT_ANCHOR})
    anchor = Mark.decode(key, ANCHOR_LABEL, str(found[0][0])) if found else START
    if chained or anchor != START:  # (a purge before any write leaves the START anchor)
        head = Mark(int(last[0][0]), str(last[0][1] or GENESIS), restored=True) if last \
            else Mark(0, GENESIS, restored=True)
    else:
        head = Mark(int(last[0][0]), GENESIS) if last else START
        if last:
            tx.rows(_CREATE_STATE, {"name": AUDIT_ANCHOR, "at": at,
                                    "value": head.encode(key, ANCHOR_LABEL)})
    created = tx.rows(_CREATE_STATE, {"name": AUDIT_HEAD, "at": at,
                                      "value": head.encode(key, HEAD_LABEL)})
    return str(created[0][0]) if created else None


def _as_head(key: bytes, value: str) -> Mark:
    """A head whose MAC fails is taken as it stands (its chain value continues the chain)
    but stays marked: refusing would stop every login; verification reports it instead."""
    head = Mark.decode(key, HEAD_LABEL, value)
    if head is not None:
        return head
    try:
        raw = json.loads(value)
        return Mark(int(raw["id"]), str(raw["chain"]), restored=True)
    except (ValueError, KeyError, TypeError):
        return Mark(0, GENESIS, restored=True)


def lock_head(tx: Tx, key: bytes, at: datetime) -> Mark:
    """Lock the chain head for this transaction and return it (created when missing)."""
    found = tx.rows(_LOCK_HEAD, {"name": AUDIT_HEAD, "at": at})
    value = str(found[0][0]) if found else _first_head(tx, key, at)
    if value is None:  # created by a concurrent first writer, which has committed it now
        value = str(tx.rows(_LOCK_HEAD, {"name": AUDIT_HEAD, "at": at})[0][0])
    return _as_head(key, value)


# PostgreSQL in two round trips instead of four: the id is drawn from the sequence in the
# statement that locks the head (RETURNING runs after the row is locked, so ids follow
# chain order), then the row and the new head are written by one statement.
_PG_LOCK_HEAD_AND_ID = text(
    "UPDATE system_state SET updated_at = :at WHERE name = :name "
    "RETURNING value, nextval(pg_get_serial_sequence('audit_events', 'id'))")
_PG_INSERT_AND_MOVE_HEAD = text(
    "WITH added AS (INSERT INTO audit_events (id, at, event, user_id, client_ip, user_agent, "
    "request_id, detail, chain) VALUES (:id, :at, :event, :user_id, :client_ip, :user_agent, "
    ":request_id, :detail, :chain) RETURNING id) "
    "UPDATE system_state SET value = :head, updated_at = :at "
    "WHERE name = :name AND EXISTS (SELECT 1 FROM added) RETURNING name")


def _row(row_id: int, values: dict[str, Any]) -> ChainRow:
    return ChainRow(id=row_id, at=values["at"], event=values["event"],
                    user_id=values["user_id"], client_ip=values["client_ip"],
                    user_agent=values["user_agent"], request_id=values["request_id"],
                    detail=values["detail"])


def append(tx: Tx, key: bytes, values: dict[str, Any], postgres: bool = False) -> tuple[int, str]:
    """Insert one audit row chained to the head, and move the head to it (one transaction;
    blocking, for ``Database.run_transaction``). Returns the row's id and chain value."""
    at = values["at"]
    if postgres:
        found = tx.rows(_PG_LOCK_HEAD_AND_ID, {"name": AUDIT_HEAD, "at": at})
        if found:  # else: no head yet, created below
            head, row_id = _as_head(key, str(found[0][0])), int(found[0][1])
            chain = chain_value(key, head.chain, _row(row_id, values))
            new_head = Mark(row_id, chain, restored=head.restored)
            tx.rows(_PG_INSERT_AND_MOVE_HEAD, {**values, "id": row_id, "chain": chain,
                                               "name": AUDIT_HEAD,
                                               "head": new_head.encode(key, HEAD_LABEL)})
            return row_id, chain
    head = lock_head(tx, key, at)
    if postgres:  # (no head yet) the sequence hands out the id
        row_id = int(tx.rows(_INSERT, values)[0][0])
        chain = chain_value(key, head.chain, _row(row_id, values))
        tx.rows(_SET_CHAIN, {"chain": chain, "id": row_id})
    else:  # SQLite would reuse the ids of deleted last rows: never at or below the head
        top = tx.rows(_MAX_ID, {})[0][0]
        row_id = max(head.id, int(top or 0)) + 1
        chain = chain_value(key, head.chain, _row(row_id, values))
        tx.rows(_INSERT_CHAINED, {**values, "id": row_id, "chain": chain})
    new_head = Mark(row_id, chain, restored=head.restored)
    tx.rows(_WRITE_STATE, {"name": AUDIT_HEAD, "at": at,
                           "value": new_head.encode(key, HEAD_LABEL)})
    return row_id, chain


def rows_of(records: Sequence[Sequence[Any]]) -> list[ChainRow]:
    """Rows read as (id, at, event, user_id, client_ip, user_agent, request_id, detail,
    chain) tuples."""
    return [ChainRow(int(r[0]), r[1], r[2], r[3], r[4] or "", r[5] or "", r[6] or "",
                     r[7] or "", r[8]) for r in records]
