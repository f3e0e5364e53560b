"""The lifecycle pages and events against the real server: HTTP forms with CSRF and the
admin rule, and a live Socket.IO client inside a room that is deleted."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from streamzy.guards.context import SYSTEM
from streamzy.storage.models import Room, User
from tests.conftest import LiveServer, csrf_of, login, post_form
from tests.lifecycle.dumps import database_copy, holds
from tests.realtime.helpers import ChatClient, connected

SECRET = "live secret: the password is swordfish"


def listen(client: ChatClient) -> ChatClient:
    client.sio.on("removed", client._recorder("removed"))
    return client


def removed(client: ChatClient) -> list[dict[str, Any]]:
    return client.received("removed")


async def signed_in(server: LiveServer, name: str, *, admin: bool = False) -> httpx.AsyncClient:
    await server.make_user(name, admin=admin)
    client = server.client()
    response = await login(client, name)
    assert response.status_code == 302, response.text
    return client


async def test_admin_deletes_a_room_while_members_are_in_it(server: LiveServer,
                                                            tmp_path: Any) -> None:
    services = server.services
    admin = await signed_in(server, "boss", admin=True)
    boss = await services.accounts.by_username("boss")
    assert boss is not None
    room = await services.rooms.create(boss.id, "doomed", "", False, SYSTEM)
    other = await services.rooms.create(boss.id, "calm", "", False, SYSTEM)
    alice = listen(await connected(server, "alice", rooms=[room.id, other.id]))
    bob = listen(await connected(server, "bob", rooms=[other.id]))
    assert (await alice.send(room.id, SECRET))["ok"]
    async with services.db.unit() as db:
        from streamzy.storage.models import Message, RoomKey
        blobs = list((await db.execute(select(Message.ciphertext)
                                       .where(Message.room_id == room.id))).scalars())
        blobs += [k for k in (await db.execute(select(RoomKey.wrapped_key)
                                               .where(RoomKey.room_id == room.id))).scalars()]
    try:
        page = await admin.get(f"/admin/rooms/{room.id}/delete")
        assert page.status_code == 200 and "cannot be undone" in page.text
        token = await csrf_of(admin, f"/admin/rooms/{room.id}/delete")
        wrong = await admin.post(f"/admin/rooms/{room.id}/delete",
                                 data={"confirm": "calm", "csrf_token": token})
        assert wrong.status_code == 400
        no_csrf = await admin.post(f"/admin/rooms/{room.id}/delete", data={"confirm": "doomed"})
        assert no_csrf.status_code == 403
        assert await services.rooms.get(room.id) is not None
        done = await admin.post(f"/admin/rooms/{room.id}/delete",
                                data={"confirm": "doomed", "csrf_token": token})
        assert done.status_code == 302 and "done=deleted" in done.headers["location"]
        listing = await admin.get(done.headers["location"])
        assert "#doomed was deleted" in listing.text

        await alice.wait_for(lambda: {"room": room.id, "reason": "deleted"} in removed(alice),
                             what="the removed notice")
        answer = await alice.call("message", {"room": room.id, "client_msg_id": "after",
                                              "text": "anyone?"})
        assert answer["ok"] is False
        rejoin = await alice.call("join", {"room": room.id})
        assert rejoin["ok"] is False and rejoin["code"] == "unknown_room"
        assert (await alice.send(other.id, "the other room works"))["ok"]
        await bob.wait_for(lambda: "the other room works" in bob.texts(other.id))
        assert not removed(bob)
        assert (await admin.get("/rooms/doomed")).status_code == 404
    finally:
        await alice.close()
        await bob.close()
        await admin.aclose()
    copy = await database_copy(services.db.url, tmp_path)
    assert blobs and not any(holds(copy, b) for b in blobs)


async def test_non_admins_cannot_delete_rooms_or_erase(server: LiveServer) -> None:
    services = server.services
    await server.make_user("boss", admin=True)
    boss = await services.accounts.by_username("boss")
    assert boss is not None
    room = await services.rooms.create(boss.id, "kept", "", False, SYSTEM)
    mallory = await signed_in(server, "mallory")
    try:
        for path in (f"/admin/rooms/{room.id}/delete", f"/admin/users/{boss.id}/erase"):
            assert (await mallory.get(path)).status_code == 403
        denied = await post_form(mallory, f"/admin/rooms/{room.id}/delete",
                                 {"confirm": "kept"}, page="/rooms")
        assert denied.status_code == 403
        denied = await post_form(mallory, f"/admin/users/{boss.id}/erase",
                                 {"confirm": "boss"}, page="/rooms")
        assert denied.status_code == 403
        assert await services.rooms.get(room.id) is not None
        async with services.db.unit() as db:
            assert (await db.get(User, boss.id)).erased_at is None  # type: ignore[union-attr]
    finally:
        await mallory.aclose()


async def test_admin_erases_a_user_and_their_socket_drops(server: LiveServer) -> None:
    services = server.services
    admin = await signed_in(server, "boss", admin=True)
    boss = await services.accounts.by_username("boss")
    assert boss is not None
    room = await services.rooms.create(boss.id, "general", "", False, SYSTEM)
    carol = await connected(server, "carol", rooms=[room.id])
    dave = await connected(server, "dave", rooms=[room.id])  # reading along
    carol_id = (await services.accounts.by_username("carol")).id  # type: ignore[union-attr]
    try:
        sent = await carol.send(room.id, "carol was here")
        assert sent["ok"]
        page = await admin.get(f"/admin/users/{carol_id}/erase")
        assert page.status_code == 200 and "Type the username" in page.text
        self_page = await admin.get(f"/admin/users/{boss.id}/erase")
        assert self_page.status_code == 200
        refused = await post_form(admin, f"/admin/users/{boss.id}/erase",
                                  {"confirm": "boss"}, page="/admin/users")
        assert refused.status_code in (403, 409)
        done = await post_form(admin, f"/admin/users/{carol_id}/erase",
                               {"confirm": "carol", "messages": "delete"}, page="/admin/users")
        assert done.status_code == 302, done.text
        listing = await admin.get(done.headers["location"])
        assert f"@erased-{carol_id} was erased" in listing.text
        assert await carol.end_reason() in ("erased", "disabled")
        # The open page of someone else sees the message go at once, like a delete.
        await dave.wait_for(lambda: dave.received("message_changed"))
        [change] = dave.received("message_changed")
        assert change["kind"] == "delete" and change["message"]["id"] == sent["id"]
        assert change["message"].get("text") in (None, "")
    finally:
        await carol.close()
        await dave.close()
        await admin.aclose()
    rows = await server.audit_rows("user_erased")
    assert rows and rows[0].user_id == boss.id


async def test_member_deletes_a_dm_and_owner_sets_retention(server: LiveServer) -> None:
    services = server.services
    ana = await signed_in(server, "ana")
    ben = listen(await connected(server, "benji"))
    try:
        opened = await ben.call("dm", {"users": ["ana"]})
        assert opened["ok"], opened
        dm = opened["room"]
        assert (await ben.call("join", {"room": dm["id"]}))["ok"]
        outsider = await signed_in(server, "eve")
        assert (await outsider.get(f"/rooms/{dm['name']}/delete")).status_code == 404
        await outsider.aclose()
        page = await ana.get(f"/rooms/{dm['name']}/delete")
        assert page.status_code == 200 and "for all its members" in page.text
        done = await post_form(ana, f"/rooms/{dm['name']}/delete", page=f"/rooms/{dm['name']}")
        assert done.status_code == 302 and "dm_deleted" in done.headers["location"]
        await ben.wait_for(lambda: {"room": dm["id"], "reason": "deleted"} in removed(ben),
                           what="the removed notice in the DM")
        async with services.db.unit() as db:
            assert (await db.get(Room, dm["id"])).kind == "deleted"  # type: ignore[union-attr]

    finally:
        await ben.close()
        await ana.aclose()


async def test_owner_sets_a_rooms_retention_on_the_manage_page(server: LiveServer) -> None:
    services = server.services
    ana = await signed_in(server, "ana")
    ben = await signed_in(server, "ben")
    owner = await services.accounts.by_username("ana")
    member = await services.accounts.by_username("ben")
    assert owner is not None and member is not None
    room = await services.rooms.create(owner.id, "team", "", False, SYSTEM)
    await services.rooms.join(member.id, room)
    try:
        page = await ana.get("/rooms/team/manage")
        assert "kept for ever" in page.text and 'id="retention-form"' in page.text
        saved = await post_form(ana, "/rooms/team/retention", {"days": "30"},
                                page="/rooms/team/manage")
        assert saved.status_code == 302
        page = await ana.get(saved.headers["location"])
        assert "deleted after 30 days" in page.text
        for bad in ("0", "99999"):
            refused = await post_form(ana, "/rooms/team/retention", {"days": bad},
                                      page="/rooms/team/manage")
            assert refused.status_code == 400, bad
        member_page = await ben.get("/rooms/team/manage")
        assert "deleted after 30 days" in member_page.text
        assert 'id="retention-form"' not in member_page.text
        denied = await post_form(ben, "/rooms/team/retention", {"days": "1"},
                                 page="/rooms/team/manage")
        assert denied.status_code == 403
        cleared = await post_form(ana, "/rooms/team/retention", {"days": ""},
                                  page="/rooms/team/manage")
        assert cleared.status_code == 302
        assert (await services.retention.describe(room.id)).days is None
    finally:
        await ana.aclose()
        await ben.aclose()
    rows = await server.audit_rows("retention_changed")
    assert len(rows) == 2
