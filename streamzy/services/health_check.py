"""The security health check: reads the facts (settings, the database, a response as
served, installed packages) and scores the deployment item by item (services/health_items.py).

Used by the admin page /admin/health (which probes its own app in-process, through the
whole middleware stack) and by ``streamzy check-config --live`` (which fetches the
running server's sign-in page over HTTP, so a proxy in front is judged too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import and_, func, select

from streamzy.clock import Clock, as_utc
from streamzy.config import Settings
from streamzy.services import health_items as items
from streamzy.services.health_items import HealthItem, HealthReport, Served, VersionLookup
from streamzy.storage import system_state
from streamzy.storage.db import Database
from streamzy.storage.models import Room, RoomKey, User

FACT_TIMEOUT = 15.0
Probe = Callable[[], Awaitable[Served]]


class HealthCheck:
    def __init__(self, db: Database, clock: Clock, settings: Settings, *,
                 unusable_rooms: Callable[[], Awaitable[int | None]],
                 served: Probe | None = None,
                 versions: VersionLookup = items.installed_version) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._unusable_rooms = unusable_rooms
        # Set by app.py once the whole ASGI stack exists (the CLI passes an HTTP fetch).
        self.served = served
        self.versions = versions

    async def run(self) -> HealthReport:
        now = self._clock.now()
        report = list(items.settings_items(self._settings))
        report += await self._served()
        report.append(await self._guarded("keys.unwrap", "Room keys unwrap", 3,
                                          self._unwrap))
        report.append(await self._guarded("keys.age", "Key age", 1, self._key_age))
        report.append(await self._guarded("second_factor.admins", "Second factor for admins",
                                          2, self._second_factor))
        report.append(await self._guarded("backup", "Last verified backup", 2,
                                          lambda: self._backup(now)))
        report.append(await self._guarded("audit_chain", "Audit chain", 2,
                                          lambda: self._audit(now)))
        report.append(await asyncio.to_thread(items.dependency_item, self.versions))
        return HealthReport(report, now)

    async def _guarded(self, name: str, title: str, weight: int,
                       read: Callable[[], Awaitable[HealthItem]]) -> HealthItem:
        try:
            async with asyncio.timeout(FACT_TIMEOUT):
                return await read()
        except Exception as exc:
            return items.failed_item(name, title, exc, weight)

    async def _served(self) -> list[HealthItem]:
        if self.served is None:
            return items.served_items(None, self._settings, "no probe configured")
        try:
            async with asyncio.timeout(FACT_TIMEOUT):
                response = await self.served()
        except Exception as exc:
            return items.served_items(None, self._settings, type(exc).__name__)
        return items.served_items(response, self._settings)

    async def _unwrap(self) -> HealthItem:
        return items.unwrap_item(await self._unusable_rooms())

    async def _key_age(self) -> HealthItem:
        """The oldest room key that new messages are still sealed with (each room's
        current version), and when the last data-key rotation finished."""
        async with self._db.unit() as db:
            oldest = (await db.execute(
                select(func.min(RoomKey.created_at)).select_from(RoomKey)
                .join(Room, and_(Room.id == RoomKey.room_id,
                                 Room.key_version == RoomKey.version))
                .where(RoomKey.wrapped_key.is_not(None)))).scalar_one_or_none()
        rotation = await system_state.read_json(self._db, system_state.ROTATION)
        finished = str(rotation.get("finished_at") or "") if rotation else ""
        days = None
        if oldest is not None:
            oldest_at = as_utc(oldest) if isinstance(oldest, datetime) else \
                as_utc(datetime.fromisoformat(str(oldest)))
            days = (self._clock.now() - oldest_at).total_seconds() / 86400
        return items.key_age_item(days, self._settings.key_max_age_days, finished or None)

    async def _second_factor(self) -> HealthItem:
        people = and_(User.is_active.is_(True), User.is_bot.is_(False),
                      User.erased_at.is_(None))
        async with self._db.unit() as db:
            rows = (await db.execute(
                select(User.is_admin, User.has_second_factor, func.count())
                .where(people).group_by(User.is_admin, User.has_second_factor))).all()
        admins = admins_with = users = users_with = 0
        for is_admin, has_factor, count in rows:
            users += int(count)
            users_with += int(count) if has_factor else 0
            if is_admin:
                admins += int(count)
                admins_with += int(count) if has_factor else 0
        found = await system_state.read(self._db, system_state.SECOND_FACTOR_POLICY)
        policy = (found[0] if found is not None and found[0] else "off")
        return items.second_factor_item(admins, admins_with, users, users_with, policy)

    async def _backup(self, now: datetime) -> HealthItem:
        state = await system_state.read_json(self._db, system_state.BACKUP_VERIFIED)
        return items.backup_item(state, now, self._settings.backup_max_age_hours)

    async def _audit(self, now: datetime) -> HealthItem:
        return items.audit_item(await system_state.read_json(self._db,
                                                             system_state.AUDIT_VERIFIED), now)
