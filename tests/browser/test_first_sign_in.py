"""A new member's first sign-in: only "Sign out" while the password is owed, then into chat."""

from __future__ import annotations

import re
from typing import Any

import pytest

from streamzy.guards.context import SYSTEM
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

NEW_PASSWORD = "marble kites over 9 harbours"
PHONE = {"width": 390, "height": 844}
FIRST_PAGE = re.compile(r"/account/password\?first=1$")


async def sign_in(page: Any, username: str, password: str = TEST_PASSWORD) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def choose_password(page: Any, current: str = TEST_PASSWORD) -> None:
    await page.locator("#f-current_password").fill(current)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Save password").click()


async def expect_only_sign_out(page: Any) -> None:
    """The top bar offers nothing but signing out: every other page would bounce back."""
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(nav.get_by_role("link")).to_have_count(0)
    await expect(page.locator("header.topbar a")).to_have_count(0)  # the brand too
    await expect(page.locator("a[href^='/admin']")).to_have_count(0)
    await expect(page.get_by_role("group", name="Administration")).to_have_count(0)


async def test_an_admin_owing_a_password_sees_no_admin_menu_then_lands_in_chat(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    await server.make_user("ada", admin=True, must_change=True)
    await server.services.applications.submit(
        "rosa", "Rosa Diaz", "rosa@example.org", "I joined the night shift this week.", SYSTEM)
    page = await browsing.page()
    await page.goto("/login")
    await sign_in(page, "ada")
    await expect(page).to_have_url(FIRST_PAGE)
    await expect(page.locator("#first-login")).to_be_visible()
    await expect_only_sign_out(page)
    await page.screenshot(path=artifact("first-password-desktop.png"), full_page=True)
    phone = await browsing.page(await server.services.accounts.by_username("ada"),
                                viewport=PHONE)
    await phone.goto("/account/password")
    await expect(phone.locator("#first-login")).to_be_visible()
    await expect_only_sign_out(phone)
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await phone.screenshot(path=artifact("first-password-phone.png"), full_page=True)

    await choose_password(page)
    await expect(page).to_have_url(re.compile(r"/rooms\?welcome=1$"))
    await expect(page.locator("#welcome")).to_contain_text("Your password is saved")
    await expect(page.locator("#room-list")).to_contain_text("#general")
    admin_menu = page.get_by_role("group", name="Administration")
    await expect(admin_menu.get_by_role("link", name="Users")).to_have_attribute(
        "href", "/admin/users")
    await expect(page.locator("#nav-pending")).to_contain_text("1")
    await page.screenshot(path=artifact("first-password-done-desktop.png"), full_page=True)
    await admin_menu.get_by_role("link", name="Users").click()
    await expect(page).to_have_url(re.compile(r"/admin/users$"))

    after = await browsing.page(await server.services.accounts.by_username("ada"),
                                viewport=PHONE)
    await after.goto("/rooms?welcome=1")
    await expect(after.locator("#welcome")).to_be_visible()
    await expect(after.get_by_role("group", name="Administration")).to_be_visible()
    await after.screenshot(path=artifact("first-password-done-phone.png"), full_page=True)


async def test_a_room_link_followed_before_signing_in_is_where_the_first_change_leads(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    await server.room("night-shift", topic="Handover notes")
    await server.make_user("dana", must_change=True)
    page = await browsing.page()
    await page.goto("/rooms/night-shift")
    await expect(page).to_have_url(re.compile(r"/login\?next=/rooms/night-shift$"))
    await sign_in(page, "dana")
    await expect(page).to_have_url(
        re.compile(r"/account/password\?first=1&next=/rooms/night-shift$"))
    await expect_only_sign_out(page)
    await choose_password(page)
    await expect(page).to_have_url(re.compile(r"/rooms/night-shift$"))
    await expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")


async def test_a_later_voluntary_change_still_returns_to_the_account_page(
        browsing: Browsing, server: BrowserServer) -> None:
    eddie = await server.make_user("eddie")
    page = await browsing.page(eddie)
    await page.goto("/account")
    await page.get_by_role("link", name="Change password").click()
    await expect(page).to_have_url(re.compile(r"/account/password$"))
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Rooms")).to_be_visible()  # the full menu
    await expect(page.get_by_label("Sign out my other sessions")).to_be_checked()
    await choose_password(page)
    await expect(page).to_have_url(re.compile(r"/account\?changed=1$"))
    await expect(page.locator("#password-changed")).to_have_text("Your password was changed.")
    await expect(page.locator("#welcome")).to_have_count(0)
