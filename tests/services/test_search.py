"""Search through the blind index, without a server: finds, misses, membership, edits,
deletes, the rebuild, key rotation, malformed queries, and nothing readable stored."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text

from streamzy.clock import ManualClock
from streamzy.services.errors import Invalid
from streamzy.services.key_rotation import KeyRotation, Throttle
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.services.search_rebuild import SearchRebuild
from streamzy.services.search_tokens import index_terms, parse_query, words
from streamzy.storage.models import Room, SearchTerm
from streamzy.wiring import Services
from tests.conftest import CLIENT, make_user

MARKERS = ("xylophonic", "quetzalcoatl", "zebrafinch")


async def setup(services: Services) -> tuple[RoomInfo, RoomInfo, Sender, Sender]:
    admin = await make_user(services, "boss", admin=True)
    general = await services.rooms.create(admin.id, "general", "", False, CLIENT)
    other = await services.rooms.create(admin.id, "other", "", False, CLIENT)
    alice = await make_user(services, "alice")
    bob = await make_user(services, "bob")
    await services.rooms.join(alice.id, general)
    await services.rooms.join(bob.id, other)
    return (general, other, Sender(alice.id, "alice", "Alice"), Sender(bob.id, "bob", "Bob"))


async def found(services: Services, user_id: int, query: str, **kw: Any) -> list[str]:
    page = await services.search.search(user_id, query, **kw)
    return [hit.snippet for hit in page.hits]


async def send(services: Services, sender: Sender, room: RoomInfo, body: str) -> int:
    result = await services.messages.send(sender, room, f"c-{hash(body)}-{room.id}", body,
                                          CLIENT)
    return result.id


def test_tokens_normalise_split_and_bound() -> None:
    assert words("Café CAFÉ cafe \uff43\uff41\uff46\uff45") == ["cafe"] * 4  # full width
    assert words("**bold** _it_ `code` [link](https://www.example.com/deploy?x=1)") == [
        "bold", "code", "link", "example", "com", "deploy"]
    assert words("a an the " + "x" * 33) == ["the"]
    assert index_terms("deployment") == ["dep", "depl", "deplo", "deploy", "deploym",
                                         "deployme", "deployment"]
    assert len(index_terms(" ".join(f"w{i:05d}" for i in range(500)))) == 256
    query = parse_query("Deploy the serv")
    assert query is not None and query.whole == ("deploy", "the") and query.prefix == "serv"
    assert query.matches("we deploy the server") and not query.matches("we deployed the server")


async def test_search_finds_words_prefixes_accents_and_all_words(services: Services) -> None:
    general, _other, alice, _bob = await setup(services)
    await send(services, alice, general, "The Crème brûlée was deployed on Friday")
    await send(services, alice, general, "nothing to see")
    await send(services, alice, general, "friday deploy again")
    assert await found(services, alice.user_id, "creme") == [
        "The Crème brûlée was deployed on Friday"]
    assert await found(services, alice.user_id, "BRULEE") == [
        "The Crème brûlée was deployed on Friday"]
    assert await found(services, alice.user_id, "depl") == [
        "friday deploy again", "The Crème brûlée was deployed on Friday"]  # newest first
    assert await found(services, alice.user_id, "friday deploy") == [  # last word: a prefix
        "friday deploy again", "The Crème brûlée was deployed on Friday"]
    assert await found(services, alice.user_id, "again friday") == ["friday deploy again"]
    # non-last words are whole words: "deploy" does not match "deployed"
    assert await found(services, alice.user_id, "deploy friday") == ["friday deploy again"]
    assert await found(services, alice.user_id, "crème friday") == [
        "The Crème brûlée was deployed on Friday"]
    assert await found(services, alice.user_id, "absent") == []
    assert await found(services, alice.user_id, "friday absent") == []


async def test_search_respects_membership(services: Services) -> None:
    general, other, alice, bob = await setup(services)
    await send(services, alice, general, "xylophonic tune in general")
    await send(services, bob, other, "xylophonic tune in other")
    assert await found(services, alice.user_id, "xylophonic") == ["xylophonic tune in general"]
    assert await found(services, bob.user_id, "xylophonic") == ["xylophonic tune in other"]
    assert await found(services, alice.user_id, "xylophonic", room="other") == []
    assert await found(services, bob.user_id, "xylophonic", room="other") == [
        "xylophonic tune in other"]
    loner = await make_user(services, "loner")
    assert await found(services, loner.id, "xylophonic") == []
    await services.rooms.leave(alice.user_id, general.id)
    assert await found(services, alice.user_id, "xylophonic") == []


async def test_a_banned_member_finds_nothing(services: Services, clock: ManualClock) -> None:
    general, _other, alice, _bob = await setup(services)
    await send(services, alice, general, "quetzalcoatl sighting")
    admin_id = (await make_user(services, "mod", admin=True)).id
    await services.moderation.ban(admin_id, general.id, alice.user_id, None, "spam", CLIENT)
    assert await found(services, alice.user_id, "quetzalcoatl") == []


async def test_edit_and_delete_update_the_index(services: Services) -> None:
    general, _other, alice, _bob = await setup(services)
    message_id = await send(services, alice, general, "the zebrafinch sings")
    assert await found(services, alice.user_id, "zebrafinch") == ["the zebrafinch sings"]
    await services.changes.edit(alice, general, message_id, "the xylophonic bird sings", CLIENT)
    assert await found(services, alice.user_id, "zebrafinch") == []
    assert await found(services, alice.user_id, "xylophonic") == ["the xylophonic bird sings"]
    await services.changes.delete(alice, general, message_id, CLIENT)
    assert await found(services, alice.user_id, "xylophonic") == []
    async with services.db.unit() as db:
        assert await db.scalar(select(func.count()).select_from(SearchTerm)) == 0


async def test_pages_go_back_with_the_cursor(services: Services) -> None:
    general, _other, alice, _bob = await setup(services)
    for i in range(7):
        await send(services, alice, general, f"zebrafinch number {i}")
    first = await services.search.search(alice.user_id, "zebrafinch", limit=3)
    assert [h.snippet for h in first.hits] == [f"zebrafinch number {i}" for i in (6, 5, 4)]
    second = await services.search.search(alice.user_id, "zebrafinch", limit=3,
                                          before=first.next_before)
    assert [h.snippet for h in second.hits] == [f"zebrafinch number {i}" for i in (3, 2, 1)]
    last = await services.search.search(alice.user_id, "zebrafinch", limit=3,
                                        before=second.next_before)
    assert [h.snippet for h in last.hits] == ["zebrafinch number 0"]
    assert last.next_before is None
    assert first.hits[0].room_name == "general" and first.hits[0].seq == 7
    assert first.hits[0].sender is not None and first.hits[0].sender.username == "alice"


@pytest.mark.parametrize(("query", "code"), [
    ("", "empty_query"), ("   ", "empty_query"), ("x" * 201, "query_too_long"),
    ("bell\x07", "invalid_query"), ("rtl\u202e", "invalid_query"), ("a b", "query_too_short"),
    (None, "empty_query"),
])
async def test_malformed_queries_are_refused_with_stable_codes(
        services: Services, query: Any, code: str) -> None:
    _general, _other, alice, _bob = await setup(services)
    with pytest.raises(Invalid) as refused:
        await services.search.search(alice.user_id, query)
    assert refused.value.code == code


async def test_rebuild_indexes_old_messages(services: Services) -> None:
    general, other, alice, bob = await setup(services)
    await send(services, alice, general, "quetzalcoatl in general")
    await send(services, bob, other, "quetzalcoatl in other")
    async with services.db.unit() as db:
        await db.execute(delete(SearchTerm))
    assert await found(services, alice.user_id, "quetzalcoatl") == []
    outcome = await SearchRebuild(services.db, services.keyring, services.clock).run(
        batch_size=1)
    assert (outcome.messages, outcome.rooms) == (2, 2)
    assert await found(services, alice.user_id, "quetzalcoatl") == ["quetzalcoatl in general"]
    assert await found(services, bob.user_id, "quetzalcoatl") == ["quetzalcoatl in other"]
    again = await SearchRebuild(services.db, services.keyring, services.clock).run(
        room="general")
    assert again.messages == 1  # idempotent: the same terms, no duplicates
    assert await found(services, alice.user_id, "quetzalcoatl") == ["quetzalcoatl in general"]


async def test_key_rotation_keeps_search_working(services: Services, clock: ManualClock) -> None:
    general, _other, alice, _bob = await setup(services)
    await send(services, alice, general, "zebrafinch before rotation")

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    outcome = await KeyRotation(services.db, clock, services.keyring, services.audit,
                                grace_seconds=5, sleep=sleep).run(Throttle(batch_size=1))
    assert outcome.destroyed >= 1
    async with services.db.unit() as db:
        version = (await db.execute(select(Room.key_version).where(Room.id == general.id))
                   ).scalar_one()
        term_versions = set((await db.execute(select(SearchTerm.key_version).where(
            SearchTerm.room_id == general.id))).scalars())
    assert version == 2 and term_versions == {2}
    services.keyring.forget()
    assert await found(services, alice.user_id, "zebrafinch") == ["zebrafinch before rotation"]
    fresh = await services.rooms.get(general.id)
    assert fresh is not None
    await send(services, alice, fresh, "zebrafinch after rotation")
    assert await found(services, alice.user_id, "zebra") == [
        "zebrafinch after rotation", "zebrafinch before rotation"]


async def test_no_message_word_is_readable_in_the_database(services: Services) -> None:
    general, _other, alice, _bob = await setup(services)
    body = " ".join(MARKERS) + " Ünïcødé"
    message_id = await send(services, alice, general, body)
    await services.changes.edit(alice, general, message_id, body + " edited", CLIENT)
    forbidden = set()
    for word in (*MARKERS, "unicode"):
        for term in index_terms(word):  # short prefixes could occur by chance in base64
            if len(term) >= 6:
                forbidden.add(term.encode())
            forbidden.add(hashlib.sha256(term.encode()).hexdigest()[:32].encode())
    async with services.db.unit() as db:
        assert await db.scalar(select(func.count()).select_from(SearchTerm)) > 10
        rows = (await db.execute(text("SELECT * FROM search_terms"))).all()
        dump = " ".join(str(r) for r in rows).encode()
        messages = " ".join(str(r) for r in (await db.execute(
            text("SELECT * FROM messages"))).all()).encode()
    for marker in forbidden:
        assert marker not in dump and marker not in messages
    url = services.settings.database_url
    if url.startswith("sqlite"):  # the file itself, write-ahead log included
        db_path = Path(url.split(":///", 1)[1])
        for path in (db_path, Path(f"{db_path}-wal")):
            if path.exists():
                raw = path.read_bytes()
                for marker in forbidden:
                    assert marker not in raw, marker
