"""Prepare a Streamzy database for a benchmark: users, sessions, rooms, memberships, history.

Rooms and their data keys go through Streamzy's own Keyring (envelope encryption, same
master key as the server). Bulk rows (thousands of users and sessions, a million messages)
go in with Core ``executemany`` so that setting up never dominates a run; the rows are the
same the services would write (session cookies are stored as their SHA-256 only).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, insert, update

from streamzy.config import Settings

try:  # one digest for session cookies and bot tokens (older trees: guards.sessions)
    from streamzy.storage.crypto import token_digest as hash_token
except ImportError:  # pragma: no cover
    from streamzy.guards.sessions import hash_token  # type: ignore[no-redef]
from streamzy.services.passwords import PasswordHasher
from streamzy.storage.migrate import upgrade
from streamzy.storage.models import Membership, Message, Room, Session, User
from streamzy.wiring import build_services

LOGIN_PASSWORD = "benchmark passphrase 4 logins!"  # noqa: S105 - throwaway benchmark users


@dataclass
class Secrets:
    secret_key: str = field(default_factory=lambda: "bench-secret-" + secrets.token_urlsafe(40))
    pepper: str = field(default_factory=lambda: "bench-pepper-" + secrets.token_urlsafe(40))
    message_key: str = field(default_factory=lambda: Fernet.generate_key().decode())


@dataclass
class Fixture:
    """What the load generator needs: one cookie per client and the rooms it joins."""

    db_url: str
    clients: list[dict[str, Any]]
    rooms: list[int]
    logins: list[dict[str, str]] = field(default_factory=list)


def server_env(db_url: str, keys: Secrets, workdir: Path, redis_url: str = "") -> dict[str, str]:
    """STREAMZY_* settings for a benchmark server (limits raised so they never bind)."""
    # Every rate limit raised far above the offered load (the limiter still runs on every
    # event: its cost is measured, its refusals are not).
    limits = {f"STREAMZY_{name.upper()}": "100000/m"
              for name in Settings.model_fields if name.startswith("rate_")}
    return {
        **limits,
        # the socket gate sized for one load generator holding every client on one address
        "STREAMZY_SOCKET_UNAUTHENTICATED_PER_ADDRESS": "100000",
        "STREAMZY_SOCKET_REFUSALS_PER_MINUTE": "100000",
        "STREAMZY_SOCKETS_PER_USER": "100000",
        "STREAMZY_SOCKETS_PER_BOT": "100000",
        "STREAMZY_ENV": "development",
        "STREAMZY_DATABASE_URL": db_url,
        "STREAMZY_SECRET_KEY": keys.secret_key,
        "STREAMZY_PASSWORD_PEPPER": keys.pepper,
        "STREAMZY_MESSAGE_KEYS": keys.message_key,
        "STREAMZY_AUDIT_LOG_PATH": str(workdir / "audit.log"),
        "STREAMZY_REDIS_URL": redis_url,
        # the durability setting under test, when the caller names one (FULL by default)
        **{k: v for k, v in os.environ.items() if k == "STREAMZY_SQLITE_SYNCHRONOUS"},
    }


def _settings(db_url: str, keys: Secrets) -> Settings:
    return Settings(_env_file=None, database_url=db_url,  # type: ignore[call-arg]
                    secret_key=keys.secret_key, password_pepper=keys.pepper,
                    message_keys=keys.message_key, bcrypt_rounds=4, audit_log_path="")


def _sync_url(db_url: str) -> str:
    return db_url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def migrate(db_url: str) -> None:
    upgrade(db_url)


async def _create_rooms(db_url: str, keys: Secrets, count: int, prefix: str) -> list[int]:
    services = build_services(_settings(db_url, keys))
    try:
        now = datetime.now(UTC)
        ids = []
        async with services.db.unit() as db:
            for i in range(count):
                room = Room(name=f"{prefix}{i:05d}", topic="", is_private=False, created_by=None,
                            created_at=now, last_seq=0, key_version=1)
                db.add(room)
                await db.flush()
                await services.keyring.create_room_key(db, room.id, 1)
                ids.append(room.id)
        return ids
    finally:
        await services.close()


def _bulk_users(db_url: str, count: int, prefix: str,
                rooms_of: list[list[int]]) -> list[str]:
    """Users with live sessions and memberships; returns their session cookies."""
    engine = create_engine(_sync_url(db_url))
    now = datetime.now(UTC)
    cookies = [secrets.token_urlsafe(64) for _ in range(count)]
    try:
        with engine.begin() as conn:
            first = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM users").scalar() + 1
            conn.execute(insert(User), [
                {"id": first + i, "username": f"{prefix}{i:05d}", "display_name": f"Bench {i}",
                 "email": "", "password_hash": "", "is_admin": False, "is_active": True,
                 "is_bot": False, "must_change_password": False, "failed_logins": 0,
                 "created_at": now} for i in range(count)])
            conn.execute(insert(Session), [
                {"token_hash": hash_token(cookies[i]), "user_id": first + i,
                 "csrf_token": secrets.token_urlsafe(32), "created_at": now,
                 "last_seen_at": now, "client_ip": "127.0.0.1", "user_agent": "bench"}
                for i in range(count)])
            conn.execute(insert(Membership), [
                {"room_id": room, "user_id": first + i, "joined_at": now, "last_read_seq": 0}
                for i in range(count) for room in rooms_of[i]])
    finally:
        engine.dispose()
    return cookies


async def _login_users(db_url: str, keys: Secrets, count: int, rounds: int) -> list[dict[str, str]]:
    """Users with a real password at the production bcrypt cost (for the login storm)."""
    # One hash serves every benchmark user (same password): each login still pays a full
    # bcrypt check on the server, and setting up costs one hash instead of twenty.
    hashed = await PasswordHasher(keys.pepper, rounds).hash(LOGIN_PASSWORD)
    hashes = [hashed] * count
    engine = create_engine(_sync_url(db_url))
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            first = conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM users").scalar() + 1
            conn.execute(insert(User), [
                {"id": first + i, "username": f"login{i:03d}", "display_name": f"Login {i}",
                 "email": "", "password_hash": hashes[i], "is_admin": False, "is_active": True,
                 "is_bot": False, "must_change_password": False, "failed_logins": 0,
                 "created_at": now} for i in range(count)])
    finally:
        engine.dispose()
    return [{"username": f"login{i:03d}", "password": LOGIN_PASSWORD} for i in range(count)]


def chat_fixture(workdir: Path, keys: Secrets, *, rooms: int, per_room: int,
                 logins: int = 0, login_rounds: int = 12) -> Fixture:
    """``rooms`` public rooms with ``per_room`` signed-in members each."""
    db_url = f"sqlite+aiosqlite:///{workdir / 'streamzy.db'}"
    migrate(db_url)
    room_ids = asyncio.run(_create_rooms(db_url, keys, rooms, "bench"))
    rooms_of = [[room_ids[i // per_room]] for i in range(rooms * per_room)]
    cookies = _bulk_users(db_url, rooms * per_room, "bench", rooms_of)
    clients = [{"cookie": c, "rooms": r} for c, r in zip(cookies, rooms_of, strict=True)]
    fixture = Fixture(db_url, clients, room_ids)
    if logins:
        fixture.logins = asyncio.run(_login_users(db_url, keys, logins, login_rounds))
    return fixture


async def _seal_samples(db_url: str, keys: Secrets, room_id: int, n: int) -> list[bytes]:
    services = build_services(_settings(db_url, keys))
    try:
        return [await services.keyring.seal(room_id, 1, f"history message {i} " + "x" * 180)
                for i in range(n)]
    finally:
        await services.close()


def history_fixture(workdir: Path, keys: Secrets, messages: int, readers: int = 1) -> Fixture:
    """One room holding ``messages`` sealed messages (Core executemany, 50,000 a batch)."""
    fixture = chat_fixture(workdir, keys, rooms=1, per_room=readers)
    room_id = fixture.rooms[0]
    samples = asyncio.run(_seal_samples(fixture.db_url, keys, room_id, 1000))
    engine = create_engine(_sync_url(fixture.db_url))
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            sender = conn.exec_driver_sql("SELECT MIN(id) FROM users").scalar()
            batch = 50_000
            for start in range(0, messages, batch):
                conn.execute(insert(Message), [
                    {"room_id": room_id, "seq": seq, "sender_id": sender,
                     "client_msg_id": f"h{seq}", "key_version": 1,
                     "ciphertext": samples[seq % len(samples)], "created_at": now}
                    for seq in range(start + 1, min(start + batch, messages) + 1)])
            conn.execute(update(Room).where(Room.id == room_id).values(last_seq=messages))
    finally:
        engine.dispose()
    return fixture
