"""Which database errors are outages (the service answers "unavailable") and which mean
the disk is full, as opposed to bugs or bad data."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means "the database cannot be reached", not a bug or bad data."""
    # SQLAlchemy's TimeoutError: no pooled connection came free in time (a storm).
    if isinstance(exc, InterfaceError | OSError | TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, OperationalError):
        # PostgreSQL reports lost connections as OperationalError; SQLite uses it for
        # schema mistakes too ("no such table"), which are bugs, not outages.
        text_ = str(exc.orig).lower() if exc.orig is not None else ""
        return not isinstance(exc.orig, sqlite3.OperationalError) or any(
            hint in text_ for hint in ("unable to open", "locked", "disk i/o", "readonly",
                                       "disk is full"))
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def is_storage_full(exc: BaseException) -> bool:
    """True when a write failed because the disk (or the database's quota) is full."""
    text_ = str(getattr(exc, "orig", None) or exc).lower()
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code == "53100" or any(hint in text_ for hint in (
        "disk is full", "no space left", "could not extend file"))
