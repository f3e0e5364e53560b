"""The hot queries search an index on SQLite, so their cost does not grow with the table.

A row-value IN (``(sender_id, client_msg_id) IN (...)``) once made every message write scan
the whole unique index: a write got slower with each message ever stored.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from streamzy.guards.sessions import BY_ID, BY_TOKEN
from streamzy.services.message_batch import find_existing as _find_existing
from streamzy.services.message_history import AFTER, BEFORE, CHANGED, NEWEST
from streamzy.services.message_state import ONE
from streamzy.services.rooms import UNREAD_MENTIONS
from streamzy.storage.migrate import upgrade


def _plan(path: Path, statement: Any, params: dict[str, Any]) -> str:
    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {compiled}", {**compiled.params, **params})
        return "\n".join(str(row[-1]) for row in rows)


def test_retry_lookup_searches_the_unique_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    for pairs in (1, 2, 50):
        params = {**{f"s{i}": i for i in range(pairs)}, **{f"c{i}": f"m{i}" for i in range(pairs)}}
        plan = _plan(path, _find_existing(pairs), params)
        assert "SCAN" not in plan, plan
        assert "SEARCH messages USING" in plan, plan
        assert "sender_id=? AND client_msg_id=?" in plan, plan


@pytest.mark.parametrize(("statement", "params"), [
    (NEWEST, {"room": 1, "limit": 51}),
    (BEFORE, {"room": 1, "before": 500, "limit": 101}),
    (AFTER, {"room": 1, "since": 500, "limit": 501}),
])
def test_history_reads_search_the_room_sequence_index(tmp_path: Path, statement: Any,
                                                      params: dict[str, Any]) -> None:
    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    plan = _plan(path, statement, params)
    assert "SCAN m" not in plan, plan
    assert "SEARCH m USING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort: the index gives the order


@pytest.mark.parametrize("statement", [BY_TOKEN, BY_ID])
def test_session_lookups_search_an_index(tmp_path: Path, statement: Any) -> None:
    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    plan = _plan(path, statement, {"key": "x"})
    assert "SCAN" not in plan, plan


@pytest.mark.parametrize(("statement", "params"), [
    (CHANGED, {"room": 1, "since": 5, "limit": 501}),
    (ONE, {"room": 1, "id": 7}),
])
def test_change_and_single_message_reads_search_an_index(tmp_path: Path, statement: Any,
                                                        params: dict[str, Any]) -> None:
    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    plan = _plan(path, statement, params)
    assert "SCAN" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_unread_mentions_search_indexes_not_the_room(tmp_path: Path) -> None:
    """The @room count reads a partial index of @room messages only, not every unread
    message of the room; named mentions their own index."""
    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    plan = _plan(path, UNREAD_MENTIONS, {"user": 1})
    assert "ix_messages_room_mentions" in plan, plan
    assert "ix_mentions_user_room_seq" in plan, plan
    assert "SCAN n" not in plan and "SCAN m " not in plan and not plan.endswith("SCAN m"), plan


@pytest.mark.parametrize("others", [0, 2])
def test_search_reads_the_term_index_newest_first(tmp_path: Path, others: int) -> None:
    from streamzy.services.search import _candidates

    path = tmp_path / "plan.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    params: dict[str, Any] = {"before": 10**12, "n": 21}
    for i in range(3):
        params[f"d{i}"] = "a" * 32
        for j in range(others):
            params[f"o{i}_{j}"] = "b" * 32
    plan = _plan(path, _candidates(3, others), params)
    # Only the branches' own (LIMITed) results are scanned, never the table or an index.
    assert all(line.startswith("SCAN b") for line in plan.splitlines()
               if "SCAN" in line), plan
    assert "USING COVERING INDEX ix_search_terms_term (term=? AND message_id<?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # each branch: a backwards range scan, no sort
    if others:  # every other word: one primary-key lookup per candidate
        assert plan.count("USING PRIMARY KEY (message_id=? AND term=?)") >= 3, plan
