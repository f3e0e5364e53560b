"""Alembic migrations build the models' schema on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from streamzy.storage.db import Database
from streamzy.storage.migrate import alembic_config, upgrade_async
from streamzy.storage.models import Base
from tests.conftest import need_service

MODEL_TABLES = set(Base.metadata.tables)


async def downgrade_async(url: str, revision: str = "base") -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    columns = {name: {c["name"] for c in inspector.get_columns(name)}
               for name in tables & MODEL_TABLES}
    drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return {"tables": tables, "columns": columns, "drift": drift}


async def schema_of(url: str) -> dict[str, Any]:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await database.dispose()


def assert_matches_models(schema: dict[str, Any]) -> None:
    assert schema["tables"] == MODEL_TABLES | {"alembic_version"}
    for name, table in Base.metadata.tables.items():
        assert schema["columns"][name] == {c.name for c in table.columns}, name
    assert schema["drift"] == []  # the migration and the models describe the same schema


async def test_sqlite_upgrade_creates_every_table_and_round_trips(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await upgrade_async(url)
    assert_matches_models(await schema_of(url))
    await downgrade_async(url)
    assert (await schema_of(url))["tables"] <= {"alembic_version"}
    await upgrade_async(url)
    assert_matches_models(await schema_of(url))


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}"
    await upgrade_async(url)
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
    finally:
        await database.dispose()
    assert mode == "wal"
    assert foreign_keys == 1


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards."""
    base = make_url(need_service("STREAMZY_TEST_DATABASE_URL", "PostgreSQL"))
    name = f"streamzy_migrations_{secrets.token_hex(6)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


@pytest.mark.services
async def test_postgresql_upgrade_downgrade_upgrade(postgres_database: str) -> None:
    url = postgres_database
    await upgrade_async(url)
    assert_matches_models(await schema_of(url))
    await downgrade_async(url)
    assert (await schema_of(url))["tables"] <= {"alembic_version"}
    await upgrade_async(url)
    assert_matches_models(await schema_of(url))
    database = Database(url)
    try:
        assert await database.ping()
    finally:
        await database.dispose()
