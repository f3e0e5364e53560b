"""Ids in URLs: only what the database can hold (1 .. 2^63-1), anything else is a 404.

Primary keys are BIGINT on PostgreSQL and INTEGER (64-bit) on SQLite, so an id of 2^63 or
more cannot exist; passed on, it made the drivers raise (a 500). Every route takes ids
through the ``id`` converter (``<id:room_id>``), registered in ``site.create_quart``;
tests/web/test_ids.py fails on any route still using a plain ``int``.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter, Map, ValidationError

DB_ID_MIN = 1
DB_ID_MAX = 2**63 - 1  # the largest signed 64-bit integer
CONVERTER = "id"


class DatabaseId(IntegerConverter):
    """``<id:name>``: a decimal id within the database's range; others do not match (404)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(url_map, min=DB_ID_MIN, max=DB_ID_MAX)

    def to_python(self, value: str) -> int:
        # A ValidationError would let werkzeug answer 405 when another rule of the same path
        # has other methods (POST /api/v1/rooms/2^64/messages -> "use GET"): say 404 instead.
        try:
            return int(super().to_python(value))
        except ValidationError:
            raise NotFound() from None


def in_range(value: int) -> bool:
    """Whether ``value`` can be a database id (for ids that arrive in forms or bodies)."""
    return DB_ID_MIN <= value <= DB_ID_MAX
