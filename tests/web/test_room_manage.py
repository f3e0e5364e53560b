"""Running a room through its pages: create on /rooms, then /rooms/<name>/manage for roles,
invitations, mutes, kicks, bans, slow mode, archive and leaving; refusals are 4xx."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from streamzy.clock import ManualClock
from streamzy.guards.context import SYSTEM
from streamzy.storage.models import Membership, Room, RoomBan
from tests.conftest import LiveServer, csrf_of, login, start_server


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"room_creation": "everyone"}


@asynccontextmanager
async def signed_in(server: LiveServer, name: str, *, admin: bool = False,
                    create: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    if create:
        await server.make_user(name, admin=admin)
    async with server.client() as client:
        assert (await login(client, name)).status_code == 302
        yield client


async def post(client: httpx.AsyncClient, path: str, data: dict[str, str] | None = None,
               page: str = "/rooms") -> httpx.Response:
    token = await csrf_of(client, page)
    return await client.post(path, data={**(data or {}), "csrf_token": token})


def code_of(response: httpx.Response) -> str:
    match = re.search(r"Code: <code>([a-z_]+)</code>", response.text)
    assert match, response.text[:500]
    return match.group(1)


async def membership(server: LiveServer, room: str, user: str) -> Membership | None:
    async with server.services.db.unit() as db:
        room_id = (await db.execute(select(Room.id).where(Room.name == room))).scalar_one()
        found = await server.services.accounts.by_username(user)
        assert found is not None
        return await db.get(Membership, (room_id, found.id))


async def user_id(server: LiveServer, name: str) -> int:
    found = await server.services.accounts.by_username(name)
    assert found is not None
    return found.id


async def test_a_member_creates_a_room_owns_it_and_runs_it(server: LiveServer) -> None:
    await server.make_user("bob")
    await server.make_user("carol")
    async with signed_in(server, "alice") as alice:
        rooms = await alice.get("/rooms")
        assert 'id="create-room"' in rooms.text
        created = await post(alice, "/rooms", {"name": "book-club", "topic": "Reading",
                                               "private": "on"})
        assert created.status_code == 302
        assert created.headers["location"] == "/rooms/book-club/manage?done=created"
        page = await alice.get(created.headers["location"])
        assert page.status_code == 200
        assert "#book-club was created and you are its owner" in page.text
        assert "🔒 private" in page.text and 'id="invite-form"' in page.text
        assert (await membership(server, "book-club", "alice")).role == "owner"  # type: ignore[union-attr]

        base = "/rooms/book-club"
        invited = await post(alice, f"{base}/invite", {"username": "Bob"}, page=f"{base}/manage")
        assert invited.headers["location"] == f"{base}/manage?done=invited&who=bob"
        await post(alice, f"{base}/invite", {"username": "carol"}, page=f"{base}/manage")
        bob, carol = await user_id(server, "bob"), await user_id(server, "carol")

        made = await post(alice, f"{base}/members/{bob}/role", {"role": "moderator"},
                          page=f"{base}/manage")
        assert made.headers["location"] == f"{base}/manage?done=role_moderator&user={bob}"
        page = await alice.get(made.headers["location"])
        assert "@bob is now a moderator." in page.text

        muted = await post(alice, f"{base}/members/{carol}/mute",
                           {"minutes": "60", "reason": "cool down"}, page=f"{base}/manage")
        page = await alice.get(muted.headers["location"])
        assert "@carol is muted until" in page.text
        assert (await membership(server, "book-club", "carol")).muted_until  # type: ignore[union-attr]
        await post(alice, f"{base}/members/{carol}/unmute", page=f"{base}/manage")
        assert (await membership(server, "book-club", "carol")).muted_until is None  # type: ignore[union-attr]

        slow = await post(alice, f"{base}/slow-mode", {"seconds": "30"}, page=f"{base}/manage")
        page = await alice.get(slow.headers["location"])
        assert "one message every 30 s" in page.text and "slow mode: 30 s" in page.text

        await post(alice, f"{base}/members/{carol}/ban", {"minutes": "0", "reason": "spam"},
                   page=f"{base}/manage")
        page = await alice.get(f"{base}/manage?done=banned&user={carol}")
        assert "@carol is banned for good." in page.text and 'id="ban-' in page.text
        assert await membership(server, "book-club", "carol") is None
        await post(alice, f"{base}/bans/{carol}/unban", page=f"{base}/manage")
        await post(alice, f"{base}/invite", {"username": "carol"}, page=f"{base}/manage")
        kicked = await post(alice, f"{base}/members/{carol}/kick", {"reason": "bye"},
                            page=f"{base}/manage")
        assert kicked.headers["location"] == f"{base}/manage?done=kicked&user={carol}"
        assert await membership(server, "book-club", "carol") is None

        archived = await post(alice, f"{base}/archive", {"archived": "1"}, page=f"{base}/manage")
        page = await alice.get(archived.headers["location"])
        assert 'id="archived-notice"' in page.text and "Unarchive the room" in page.text
        await post(alice, f"{base}/archive", {"archived": "0"}, page=f"{base}/manage")

        refused = await post(alice, f"{base}/leave", page=f"{base}/manage")
        assert refused.status_code == 409 and code_of(refused) == "last_owner"
    events = [(r.event, json.loads(r.detail).get("reason")) for r in await server.audit_rows()
              if r.event.startswith("room_")]
    assert [e for e in events if e[0] != "room_invited"] == [
        ("room_created", None), ("room_role_changed", None), ("room_muted", "cool down"),
        ("room_unmuted", None), ("room_slow_mode", None), ("room_banned", "spam"),
        ("room_unbanned", None), ("room_kicked", "bye"), ("room_archived", None),
        ("room_unarchived", None)]


async def test_plain_members_see_the_members_but_may_not_moderate(server: LiveServer) -> None:
    owner = await server.make_user("olivia")
    room = await server.services.rooms.create(owner.id, "general", "", False, SYSTEM)
    alice = await server.make_user("alice")
    await server.services.rooms.invite(owner.id, room.id, "alice", SYSTEM)
    base = "/rooms/general"
    async with signed_in(server, "alice", create=False) as client:
        page = await client.get(f"{base}/manage")
        assert page.status_code == 200
        assert "@olivia" in page.text and "Moderate…" not in page.text
        assert 'id="invite-form"' not in page.text and 'id="leave-form"' in page.text
        for path, data in ((f"members/{owner.id}/kick", {}),
                           (f"members/{owner.id}/mute", {"minutes": "10"}),
                           (f"members/{owner.id}/ban", {"minutes": "0"}),
                           (f"members/{owner.id}/role", {"role": "member"}),
                           ("slow-mode", {"seconds": "10"}), ("archive", {"archived": "1"}),
                           ("invite", {"username": "olivia"}), ("bans", {"username": "olivia",
                                                                         "minutes": "0"})):
            refused = await post(client, f"{base}/{path}", data, page=f"{base}/manage")
            assert refused.status_code == 403, path
            assert code_of(refused) == "not_allowed", path
        left = await post(client, f"{base}/leave", page=f"{base}/manage")
        assert left.status_code == 302 and left.headers["location"] == "/rooms"
        assert (await client.get(f"{base}/manage")).status_code == 404  # no longer a member
    assert not await server.services.rooms.is_member(alice.id, room.id)
    assert len(await server.audit_rows("room_action_denied")) >= 1


async def test_who_sees_a_manage_page(server: LiveServer) -> None:
    owner = await server.make_user("olivia")
    await server.services.rooms.create(owner.id, "secret", "", True, SYSTEM)
    await server.services.rooms.create(owner.id, "open", "", False, SYSTEM)
    async with signed_in(server, "sam") as stranger:
        assert (await stranger.get("/rooms/secret/manage")).status_code == 404
        assert (await stranger.get("/rooms/open/manage")).status_code == 404
        assert (await stranger.get("/rooms/nowhere/manage")).status_code == 404
        kicked = await post(stranger, f"/rooms/secret/members/{owner.id}/kick")
        assert kicked.status_code == 403 and code_of(kicked) == "not_a_member"
    async with signed_in(server, "root", admin=True) as admin:
        page = await admin.get("/rooms/secret/manage")
        assert page.status_code == 200 and "as an admin you can manage it" in page.text
        rooms = await admin.get("/admin/rooms")
        assert 'href="/rooms/secret/manage"' in rooms.text
        await post(admin, "/rooms/secret/archive", {"archived": "1"}, page="/rooms/secret/manage")
        rooms = await admin.get("/admin/rooms")
        assert 'class="tag warning">archived' in rooms.text


async def test_bad_input_is_a_4xx_never_a_500(server: LiveServer) -> None:
    async with signed_in(server, "olivia") as owner:
        await post(owner, "/rooms", {"name": "general"})
        alice = await server.make_user("alice")
        general = await server.services.rooms.by_name("general")
        assert general is not None
        await server.services.rooms.invite(await user_id(server, "olivia"), general.id, "alice",
                                           SYSTEM)
        base = "/rooms/general"
        cases = [
            (f"{base}/members/{alice.id}/mute", {"minutes": "soon"}, 400),
            (f"{base}/members/{alice.id}/mute", {"minutes": "999999999"}, 400),
            (f"{base}/members/{alice.id}/mute", {"minutes": "0"}, 400),
            (f"{base}/members/{alice.id}/mute", {"minutes": "10", "reason": "r" * 201}, 400),
            (f"{base}/members/{alice.id}/mute", {"minutes": "10", "reason": "a\x00b"}, 400),
            (f"{base}/members/{alice.id}/role", {"role": "king"}, 400),
            (f"{base}/members/{alice.id}/ban", {}, 400),
            (f"{base}/members/{2**64}/kick", {}, 404),
            (f"{base}/members/999999/kick", {}, 404),
            (f"{base}/slow-mode", {"seconds": "-1"}, 400),
            (f"{base}/slow-mode", {"seconds": "99999999"}, 400),
            (f"{base}/archive", {"archived": "maybe"}, 400),
            (f"{base}/invite", {"username": ""}, 400),
            (f"{base}/invite", {"username": "nobody-at-all"}, 404),
            (f"{base}/bans/{alice.id}/unban", {}, 404),
            (f"/rooms/{'x' * 300}/slow-mode", {"seconds": "1"}, 404),
            ("/rooms", {"name": "Bad Name!"}, 400),
            ("/rooms", {"name": "general"}, 409),
        ]
        for path, data, status in cases:
            response = await post(owner, path, data)
            assert response.status_code == status, (path, data, response.status_code)
        assert (await owner.get(f"{base}/members/{alice.id}/kick")).status_code == 405
        assert (await owner.post(f"{base}/members/{alice.id}/kick")).status_code in (403, 415)


async def test_room_creation_for_admins_only(settings_factory: Any) -> None:
    live, shutdown = await start_server(settings_factory(room_creation="admins"), ManualClock())
    try:
        async with signed_in(live, "alice") as alice:
            assert 'id="create-room"' not in (await alice.get("/rooms")).text
            refused = await post(alice, "/rooms", {"name": "mine"})
            assert refused.status_code == 403 and code_of(refused) == "room_creation_closed"
        async with signed_in(live, "root", admin=True) as admin:
            assert 'id="create-room"' in (await admin.get("/rooms")).text
            assert (await post(admin, "/rooms", {"name": "ours"})).status_code == 302
        async with live.services.db.unit() as db:
            assert (await db.execute(select(Room.name))).scalars().all() == ["ours"]
            assert (await db.execute(select(RoomBan))).scalars().all() == []
    finally:
        await shutdown()


async def test_the_api_meets_the_same_room_rules(server: LiveServer) -> None:
    """A bot posting through the JSON API is held to slow mode and archive like a socket."""
    admin = await server.make_user("root", admin=True)
    room = await server.services.rooms.create(admin.id, "general", "", False, SYSTEM)
    _, token = await server.services.bots.create(admin.id, "news-bot", "News", [room.id],
                                                 SYSTEM)
    await server.services.moderation.set_slow_mode(admin.id, room.id, 60, SYSTEM)
    path = f"/api/v1/rooms/{room.id}/messages"
    async with server.client(headers={"Authorization": f"Bearer {token}"}) as bot:
        first = await bot.post(path, json={"client_msg_id": "b1", "text": "one"})
        assert first.status_code == 201, first.text
        second = await bot.post(path, json={"client_msg_id": "b2", "text": "two"})
        assert second.status_code == 429 and second.json()["code"] == "slow_mode"
        assert second.headers["Retry-After"] == "60"
        await server.services.room_roles.archive(admin.id, room.id, True, SYSTEM)
        server.clock.advance(60)
        third = await bot.post(path, json={"client_msg_id": "b3", "text": "three"})
        assert third.status_code == 403 and third.json()["code"] == "archived"
