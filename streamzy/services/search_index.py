"""The blind search index as the database holds it: one row per (message, term), each term
an HMAC-SHA256 under the room's data key version (purpose "search"), truncated to 128
bits, of a normalised word or prefix (services/search_tokens.py). Never the word.

Terms are computed before the transaction (``blind_terms``, microseconds per message) and
written in the same transaction as the message insert, edit, delete or re-encryption
(``write_terms``, ``drop_terms``), so the index never disagrees with the messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import text

from streamzy.services.search_tokens import index_terms
from streamzy.storage.crypto import DataKey
from streamzy.storage.db import Tx

SEARCH = "search"  # the blinding purpose: a key of its own, derived from the room key
TERM_HEX = 32  # 128 bits: collisions are negligible, and the decrypted text is checked

Blind = Callable[[str], str]
TermRow = tuple[int, int, int, Sequence[str]]  # message id, room id, key version, terms

_DROP = text("DELETE FROM search_terms WHERE message_id = :id RETURNING message_id")


def blinder(key: DataKey) -> Blind:
    """The term function of one room key version."""
    full = key.blinder(SEARCH)

    def blind(term: str) -> str:
        return full(term)[:TERM_HEX]

    return blind


def blind_terms(blind: Blind, text_: str) -> tuple[str, ...]:
    """The blinded index terms of one message's text."""
    return tuple(blind(term) for term in index_terms(text_))


_INSERT = text("INSERT INTO search_terms (message_id, term, room_id, key_version) "
               "VALUES (:m, :t, :r, :v)")


def write_terms(tx: Tx, rows: Iterable[TermRow]) -> int:
    """Insert the terms of freshly written (or re-written) messages; returns the count.
    One prepared statement for every row (executemany): a multi-row VALUES list built per
    batch cost about twice as much on SQLite."""
    params = [{"m": message_id, "t": term, "r": room_id, "v": version}
              for message_id, room_id, version, terms in rows for term in terms]
    tx.many(_INSERT, params)
    return len(params)


def drop_terms(tx: Tx, message_id: int) -> None:
    """Remove one message's terms (its text was deleted or is about to be replaced)."""
    tx.rows(_DROP, {"id": message_id})
