"""Small named facts the processes share through the database (table ``system_state``).

Names in use: ``keyring_epoch`` (bumped whenever room keys change: every process drops its
cached keys when it sees a new value), ``rotation`` (the key-rotation checkpoint),
``audit_verified`` (when the audit chain was last verified and what was found),
``backup_verified`` (the last backup restored and verified), ``purge`` (the last
retention purge), ``second_factor_policy`` (off, admins or everyone), ``audit_head`` and
``audit_anchor`` (the audit chain's last row and where its verification starts:
guards/audit_chain.py). Values are short text, JSON where structured.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from streamzy.storage.db import Database
from streamzy.storage.models import SystemState

KEYRING_EPOCH = "keyring_epoch"
ROTATION = "rotation"
AUDIT_VERIFIED = "audit_verified"
BACKUP_VERIFIED = "backup_verified"
PURGE = "purge"
# Who must have a second factor: "off", "admins" or "everyone" (set in the admin console;
# read by every session resolve, so a change applies at once in every process).
SECOND_FACTOR_POLICY = "second_factor_policy"
AUDIT_HEAD = "audit_head"
AUDIT_ANCHOR = "audit_anchor"


async def read(db: Database, name: str) -> tuple[str, datetime] | None:
    """The value and when it was written, or None."""
    async with db.unit() as session:
        row = await session.get(SystemState, name)
        return None if row is None else (row.value, row.updated_at)


async def read_json(db: Database, name: str) -> dict[str, Any] | None:
    found = await read(db, name)
    if found is None or not found[0]:
        return None
    value = json.loads(found[0])
    return value if isinstance(value, dict) else None


async def write(session: AsyncSession, name: str, value: str, at: datetime) -> None:
    """Set ``name`` inside the caller's transaction."""
    row = await session.get(SystemState, name, with_for_update=True)
    if row is None:
        session.add(SystemState(name=name, value=value, updated_at=at))
    else:
        row.value = value
        row.updated_at = at


async def write_json(db: Database, name: str, value: dict[str, Any], at: datetime) -> None:
    async with db.unit() as session:
        await write(session, name, json.dumps(value, sort_keys=True), at)


async def bump(session: AsyncSession, name: str, at: datetime) -> int:
    """Increment the integer ``name`` inside the caller's transaction; the new value."""
    row = (await session.execute(select(SystemState).where(SystemState.name == name)
                                 .with_for_update())).scalar_one_or_none()
    if row is None:
        session.add(SystemState(name=name, value="1", updated_at=at))
        return 1
    row.value = str(int(row.value or "0") + 1)
    row.updated_at = at
    return int(row.value)
