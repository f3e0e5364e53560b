"""The admin console's tables on a 390 px phone: every column stays on screen and works.

A table that merely scrolls inside its own box passes a "no page overflow" check while its
last columns (Users' actions, Rooms' invite form, the audit log's event names) sit off to
the right, out of sight. These tests measure where each cell's content actually is, before
anything is clicked (a click would scroll it into view and hide the problem), then use an
action at that width.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from streamzy.guards.context import RequestInfo
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
LONG_AGENT = RequestInfo(
    "198.51.100.23", "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro Build/AP1A.240305.019) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.113 Mobile Safari/537.36", "")

# Elements of the table (its own content, not screen-reader-only text or the header row,
# which is visually hidden on a phone) that reach past either edge of the viewport.
OFF_SCREEN = """table => [...table.querySelectorAll('*')]
  .filter(e => !e.closest('.sr-only') && !e.closest('thead'))
  .filter(e => { const r = e.getBoundingClientRect();
                 return r.width > 0 && (r.right > innerWidth + 0.5 || r.left < -0.5); })
  .slice(0, 6).map(e => { const r = e.getBoundingClientRect();
                          return `${e.tagName}.${e.className} ${r.left | 0}..${r.right | 0}`; })"""
# Each stacked cell names its column (the header row is out of sight on a phone).
UNLABELLED_CELLS = """table => [...table.querySelectorAll('tbody td')]
  .filter(td => !td.classList.contains('empty'))
  .filter(td => { const label = getComputedStyle(td, '::before').content;
                  return !td.dataset.label || label === 'none' || label === 'normal'; })
  .map(td => td.outerHTML.slice(0, 60))"""
PAGE_WIDTH = "() => document.documentElement.scrollWidth"
# Scroll the page (only the page, vertically) to the element, then measure it and ask
# what is drawn at its middle: a cell clipped by a scroll box or covered fails there.
PLACE = """el => { window.scrollBy(0, el.getBoundingClientRect().top - innerHeight / 2);
  const r = el.getBoundingClientRect();
  const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return {left: r.left, right: r.right, width: r.width,
          hit: at !== null && (at === el || el.contains(at))}; }"""


async def expect_on_screen(locator: Any, what: str) -> None:
    """``locator`` is shown wholly inside the viewport's width, and can be tapped."""
    await expect(locator, what).to_be_visible()
    place = await locator.evaluate(PLACE)
    assert place["width"] > 0 and place["left"] >= -0.5, (what, place)
    assert place["right"] <= PHONE["width"] + 0.5, (what, place)
    assert place["hit"], (what, "is covered or clipped", place)


async def expect_table_fits(page: Any, selector: str) -> None:
    """The whole table fits 390 px: no element past an edge, every cell labelled."""
    table = page.locator(selector)
    await expect(table).to_be_visible()
    assert await page.evaluate(PAGE_WIDTH) <= PHONE["width"], await page.evaluate(PAGE_WIDTH)
    assert await table.evaluate(OFF_SCREEN) == [], f"{selector} reaches off screen"
    assert await table.evaluate(UNLABELLED_CELLS) == [], f"{selector} has unlabelled cells"


async def shoot(page: Any, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # or the sticky top bar lands mid-picture
    await page.screenshot(path=artifact(name), full_page=True)


async def test_admin_tables_fit_a_390px_phone(browsing: Browsing, server: BrowserServer) -> None:
    admin = await server.admin()
    await server.room("general", topic="Announcements, questions and the odd cat")
    await server.room("incident-response-team", private=True,
                      topic="Pager duty, post-mortems and the long tail of follow-ups")
    await server.make_user("maximiliana_featherstonehaugh")
    await server.make_user("olga")
    await server.make_user("lou")
    for _ in range(server.settings.lockout_threshold):
        await server.services.accounts.authenticate("lou", "wrong password!", LONG_AGENT)
    await server.services.applications.submit(
        "rosa", "Rosa Diaz", "rosa@example.org", "I joined the night shift this week.",
        LONG_AGENT)
    phone = await browsing.page(admin, viewport=PHONE)
    desktop = await browsing.page(admin, viewport=DESKTOP)

    # Applications (cards already): approving and rejecting are on screen.
    await phone.goto("/admin/applications")
    rosa = phone.locator(".application[data-username='rosa']")
    await expect_on_screen(rosa.get_by_label("Username"), "approve as")
    await expect_on_screen(rosa.get_by_role("button", name="Approve"), "Approve")
    await expect_on_screen(rosa.locator("summary"), "Reject…")
    assert await phone.evaluate(PAGE_WIDTH) <= PHONE["width"]

    # Users: every row's buttons are on screen, and one works at this width.
    await phone.goto("/admin/users")
    await expect_table_fits(phone, "#users")
    for name in ("maximiliana_featherstonehaugh", "olga", "lou"):
        row = phone.locator(f"tr[data-username='{name}']")
        await expect_on_screen(row.get_by_role("button", name="Disable"), f"{name} Disable")
        await expect_on_screen(row.get_by_role("button", name="Reset password"),
                               f"{name} Reset password")
        await expect_on_screen(row.get_by_role("button", name="Make admin"),
                               f"{name} Make admin")
    lou = phone.locator("tr[data-username='lou']")
    await expect_on_screen(lou.get_by_role("button", name="Unlock"), "Unlock")
    await expect_on_screen(lou.locator(".tag.warning"), "locked tag")
    await lou.get_by_role("button", name="Unlock").click()
    await expect(phone.locator("#users-notice")).to_have_text(
        "@lou is unlocked and can try to sign in again.")
    await expect(lou).not_to_contain_text("locked")
    await expect_table_fits(phone, "#users")
    await shoot(phone, "admin-users-phone.png")
    await desktop.goto("/admin/users")
    await shoot(desktop, "admin-users-desktop.png")

    # Rooms: the invite form of every room is on screen; inviting works at this width.
    await phone.goto("/admin/rooms")
    await expect_table_fits(phone, "#rooms")
    for room in ("general", "incident-response-team"):
        row = phone.locator(f"tr[data-room='{room}']")
        await expect_on_screen(row.get_by_label(f"Username to invite to #{room}"),
                               f"{room} invite field")
        await expect_on_screen(row.get_by_role("button", name="Invite"),
                               f"{room} Invite")
    team = phone.locator("tr[data-room='incident-response-team']")
    await team.get_by_label("Username to invite to #incident-response-team").fill("olga")
    await team.get_by_role("button", name="Invite").click()
    await expect(phone.locator("#rooms-notice")).to_have_text(
        "@olga can now join #incident-response-team.")
    await expect_table_fits(phone, "#rooms")
    await shoot(phone, "admin-rooms-phone.png")
    await desktop.goto("/admin/rooms")
    await shoot(desktop, "admin-rooms-desktop.png")

    # Bots: the revoke button is on screen.
    await phone.goto("/admin/bots")
    await phone.get_by_label("Bot username").fill("deploy-bot")
    await phone.get_by_label("Display name").fill("Deploy Bot")
    await phone.get_by_label("#general").check()
    await phone.get_by_role("button", name="Create bot").click()
    await expect(phone.get_by_role("heading", name="Bot created")).to_be_visible()
    await phone.goto("/admin/bots")
    await expect_table_fits(phone, "#bots")
    await expect_on_screen(phone.locator("#bots").get_by_role("button", name="Revoke"),
                           "bot Revoke")
    await shoot(phone, "admin-bots-phone.png")
    await desktop.goto("/admin/bots")
    await shoot(desktop, "admin-bots-desktop.png")

    # Audit: every event name is on screen, whole; filtering by one works at this width.
    await phone.goto("/admin/audit")
    await expect_table_fits(phone, "#audit")
    events = phone.locator("#audit tbody td:nth-child(2) code")
    await expect(events.first).to_be_visible()
    names = await events.all_text_contents()
    assert {"account_locked", "account_changed", "room_invited"} <= set(names), names
    for k in range(await events.count()):
        await expect_on_screen(events.nth(k), f"event {names[k]}")
    await shoot(phone, "admin-audit-phone.png")
    await phone.get_by_label("Event").fill("room_invited")
    await phone.get_by_role("button", name="Filter").click()
    await expect(phone).to_have_url(re.compile(r"[?&]event=room_invited(&|$)"))
    await expect(events).to_have_text(["room_invited"])
    await expect_table_fits(phone, "#audit")
    await desktop.goto("/admin/audit")
    await shoot(desktop, "admin-audit-desktop.png")


async def test_account_sessions_fit_a_390px_phone(browsing: Browsing,
                                                  server: BrowserServer) -> None:
    member = await server.make_user("quinn")
    await server.services.sessions.issue(member.id, LONG_AGENT)  # another device to revoke
    phone = await browsing.page(member, viewport=PHONE)
    await phone.goto("/account")
    await expect_table_fits(phone, "#sessions")
    other = phone.locator("#sessions tbody tr:not(.current)")
    revoke = other.get_by_role("button", name="Revoke")
    await expect_on_screen(revoke, "Revoke the other session")
    await shoot(phone, "account-phone.png")
    await revoke.click()
    await expect(phone.locator("#sessions tbody tr")).to_have_count(1)
    await expect_on_screen(phone.locator("#sessions").get_by_role("button",
                                                                         name="Sign out"),
                           "Sign out of this device")
