"""Journeys through the data lifecycle in Chromium: an admin deletes a room while a member
has it open (the member's page says it is gone), an admin erases a person, a room's owner
sets its retention. Each new page is screenshotted."""

from __future__ import annotations

import re

import pytest

from streamzy.guards.context import SYSTEM
from streamzy.services.message_state import Person
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_admin_deletes_a_room_a_member_has_open(browsing: Browsing,
                                                      server: BrowserServer) -> None:
    room = await server.room("doomed", topic="About to go")
    await server.room("calm")
    carol = await server.make_user("carol")
    await server.services.rooms.join(carol.id, await server.services.rooms.resolve(room))
    await server.post(room, carol, "this will be shredded", "c1")
    member = await browsing.page(carol)
    await open_room(member, "doomed")
    await expect(member.locator("#messages .message .text")).to_have_text(
        ["this will be shredded"])

    admin = await browsing.page(await server.admin())
    await admin.goto("/admin/rooms")
    await admin.locator('tr[data-room="doomed"] a[data-action="delete-room"]').click()
    await expect(admin.locator("h1")).to_have_text("Delete #doomed?")
    await admin.screenshot(path=artifact("admin-room-delete.png"), full_page=True)
    await admin.fill("#f-confirm", "doomed")
    await admin.get_by_role("button", name="Delete the room for good").click()
    await expect(admin.locator("#rooms-notice")).to_contain_text("#doomed was deleted")
    await expect(admin.locator('tr[data-room="doomed"]')).to_have_count(0)

    await expect(member.locator("#room-gone")).to_contain_text("This room was deleted")
    await expect(member.locator("#messages .message")).to_have_count(0)
    await expect(member.locator("#conn-state")).to_have_text("Deleted")
    await member.screenshot(path=artifact("room-deleted-member.png"), full_page=True)
    browsing.allow = re.compile(r"status of 404 .*/rooms/doomed$")  # the room is gone
    await member.goto("/rooms/doomed")
    await expect(member.locator("h1")).not_to_have_text("#doomed")


async def test_admin_erases_a_user(browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("general")
    dora = await server.make_user("dora")
    await server.services.rooms.join(dora.id, await server.services.rooms.resolve(room))
    await server.post(room, dora, "dora's words", "d1")
    admin = await browsing.page(await server.admin())
    await admin.goto("/admin/users")
    await admin.locator(f'#user-{dora.id} a[data-action="erase"]').click()
    await expect(admin.locator("h1")).to_have_text("Erase @dora?")
    await admin.screenshot(path=artifact("admin-user-erase.png"), full_page=True)
    await admin.fill("#f-confirm", "dora")
    await admin.get_by_role("button", name="Erase the account").click()
    await expect(admin.locator("#users-notice")).to_have_text(f"@erased-{dora.id} was erased.")
    await expect(admin.locator(f"#user-{dora.id}")).to_contain_text("Erased user")
    await expect(admin.locator(f'#user-{dora.id} a[data-action="erase"]')).to_have_count(0)
    await admin.screenshot(path=artifact("admin-users-after-erase.png"), full_page=True)
    await open_room(admin, "general")
    await expect(admin.locator("#messages .message")).to_have_count(1)
    await expect(admin.locator("#messages .message .text")).not_to_contain_text("dora's words")


async def test_owner_sets_a_rooms_retention(browsing: Browsing, server: BrowserServer) -> None:
    owner = await server.make_user("olga")
    await server.services.rooms.create(owner.id, "team", "", False,
                                       SYSTEM)
    page = await browsing.page(owner)
    await page.goto("/rooms/team/manage")
    await expect(page.locator("#retention-note")).to_contain_text("kept for ever")
    await page.fill("#retention-days", "30")
    await page.get_by_role("button", name="Save retention").click()
    await expect(page.locator("#manage-notice")).to_have_text(
        "Messages older than 30 days are now deleted.")
    await expect(page.locator("#retention-note")).to_contain_text("deleted after 30 days")
    await page.screenshot(path=artifact("room-manage-retention.png"), full_page=True)


async def test_a_member_deletes_a_dm_for_everyone(browsing: Browsing,
                                                  server: BrowserServer) -> None:
    ann = await server.make_user("ann")
    bea = await server.make_user("bea")
    opened = await server.services.direct.open(Person(ann.id, "ann", "Ann"), ["bea"],
                                               SYSTEM)
    await server.post(opened.room.id, ann, "just between us", "a1")
    other = await browsing.page(bea)
    await open_room(other, opened.room.name)
    page = await browsing.page(ann)
    await open_room(page, opened.room.name)
    await page.locator("#delete-dm-link").click()
    await expect(page.locator("#delete-dm")).to_contain_text("for all its members")
    await page.screenshot(path=artifact("dm-delete.png"), full_page=True)
    await page.get_by_role("button", name="Delete for everyone").click()
    await expect(page.locator("#rooms-notice")).to_contain_text("deleted for everyone")
    await expect(other.locator("#room-gone")).to_contain_text("This conversation was deleted")
