"""Envelope encryption without a server: seal/open round trips per room, keys wrapped by the
master keys, and neither text nor raw keys in the database."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select, update

from streamzy.clock import ManualClock
from streamzy.storage.crypto import Keyring, MasterKeys
from streamzy.storage.models import RoomKey
from streamzy.wiring import Services
from tests.conftest import CLIENT, make_user

TEXT = "the launch code is 0000-ZEBRA-PLAINTEXT \u00e9\u4e2d"


async def two_rooms(services: Services) -> tuple[int, int]:
    admin = await make_user(services, "boss", admin=True)
    first = await services.rooms.create(admin.id, "first", "", False, CLIENT)
    second = await services.rooms.create(admin.id, "second", "", False, CLIENT)
    return first.id, second.id


def master_keys(services: Services, *extra: str) -> MasterKeys:
    configured = [k.get_secret_value() for k in services.settings.message_keys]
    return MasterKeys([*extra, *configured])


async def test_seal_then_open_gives_the_text_back(services: Services) -> None:
    room, _ = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    assert sealed.startswith(b"gAAAA") and b"ZEBRA" not in sealed
    assert await services.keyring.open(room, 1, sealed) == TEXT
    assert await services.keyring.seal(room, 1, TEXT) != sealed  # fresh IV every time


async def test_a_fresh_process_opens_it_from_the_wrapped_key(services: Services,
                                                             clock: ManualClock) -> None:
    room, _ = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    restarted = Keyring(services.db, master_keys(services), clock)
    assert await restarted.open(room, 1, sealed) == TEXT


async def test_one_rooms_key_does_not_open_another_rooms_text(services: Services) -> None:
    first, second = await two_rooms(services)
    sealed = await services.keyring.seal(first, 1, TEXT)
    assert await services.keyring.open(second, 1, sealed) is None


async def test_tampered_text_or_a_wrong_master_key_opens_to_nothing(
        services: Services, clock: ManualClock) -> None:
    room, _ = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    tampered = sealed[:-6] + (b"AAAAAA" if not sealed.endswith(b"AAAAAA") else b"BBBBBB")
    assert await services.keyring.open(room, 1, tampered) is None
    stranger = Keyring(services.db, MasterKeys([Fernet.generate_key().decode()]), clock)
    assert await stranger.open(room, 1, sealed) is None


async def test_the_database_holds_no_raw_room_key(services: Services) -> None:
    room, _ = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    async with services.db.unit() as db:
        [row] = (await db.execute(select(RoomKey).where(RoomKey.room_id == room))).scalars()
    assert row.wrapped_key is not None
    raw = master_keys(services).unwrap(row.wrapped_key)
    assert raw not in row.wrapped_key
    assert Fernet(raw).decrypt(sealed).decode() == TEXT  # that wrapped key is the room's key


async def test_master_key_rotation_rewraps_and_old_text_still_opens(
        services: Services, clock: ManualClock) -> None:
    room, _ = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    new_key = Fernet.generate_key().decode()
    rotating = master_keys(services, new_key)  # newest first, the old one still listed
    async with services.db.unit() as db:
        for row in (await db.execute(select(RoomKey))).scalars():
            assert row.wrapped_key is not None
            row.wrapped_key = rotating.rewrap(row.wrapped_key)
    only_new = Keyring(services.db, MasterKeys([new_key]), clock)
    assert await only_new.open(room, 1, sealed) == TEXT


async def test_a_destroyed_room_key_shreds_the_rooms_text(services: Services,
                                                          clock: ManualClock) -> None:
    room, other = await two_rooms(services)
    sealed = await services.keyring.seal(room, 1, TEXT)
    kept = await services.keyring.seal(other, 1, TEXT)
    async with services.db.unit() as db:
        await db.execute(update(RoomKey).where(RoomKey.room_id == room)
                         .values(wrapped_key=None, destroyed_at=clock.now()))
    restarted = Keyring(services.db, master_keys(services), clock)
    assert await restarted.open(room, 1, sealed) is None
    assert await restarted.open(other, 1, kept) == TEXT
