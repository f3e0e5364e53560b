"""Sessions seen from the browser: inactivity, sign-out elsewhere, revoke, disable, restarts."""

from __future__ import annotations

import asyncio
import re

import pytest

from streamzy.realtime.handlers import MISSED_LIMIT
from tests.browser.conftest import NETWORK_NOISE, BrowserServer, Browsing, expect
from tests.browser.helpers import expect_seqs, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.settings(inactivity_logout_seconds=30)
async def test_inactivity_warns_then_signs_out_through_logout(browsing: Browsing,
                                                             server: BrowserServer) -> None:
    await server.room("general")
    user = await server.make_user("frank")
    cookie = await server.cookie_for(user)
    page = await (await browsing.context(cookie=cookie)).new_page()
    await page.clock.install()  # the page's timers run on a clock the test moves
    await open_room(page, "general")
    modal = page.locator("#idle-modal")
    composer = page.get_by_label("Message #general")
    await composer.focus()

    await page.clock.fast_forward(13_000)  # 30 s limit, the warning shows for the last 15
    await expect(modal).to_be_hidden()
    await page.clock.fast_forward(3_000)
    await expect(modal).to_be_visible()
    await expect(page.get_by_role("alertdialog")).to_contain_text("Are you still there?")
    await expect(page.locator("#idle-countdown")).to_have_text(re.compile(r"^1[34]$"))
    await expect(page.get_by_role("button", name="Stay signed in")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(modal).to_be_hidden()
    await expect(composer).to_be_focused()  # focus goes back where it was

    await page.clock.fast_forward(10_000)
    await composer.press_sequentially("still here")  # typing is activity
    await page.clock.fast_forward(10_000)
    await expect(modal).to_be_hidden()
    await page.clock.fast_forward(7_000)
    await expect(modal).to_be_visible()
    await page.clock.fast_forward(15_000)
    await expect(page).to_have_url(re.compile(r"/login\?reason=inactive$"))
    await expect(page.locator("#login-notice")).to_contain_text("inactivity")

    assert (await server.services.sessions.resolve(cookie)).session is None
    logouts = await server.audit_rows("logout")
    assert [row.user_id for row in logouts] == [user.id]
    assert '"inactivity"' in logouts[0].detail
    await page.goto("/rooms")
    await expect(page).to_have_url(re.compile(r"/login"))


async def test_signing_out_in_one_window_ends_the_other_windows_chat(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    user = await server.make_user("gina")
    cookie = await server.cookie_for(user)  # one browser session, two windows
    first = await (await browsing.context(cookie=cookie)).new_page()
    second = await (await browsing.context(cookie=cookie)).new_page()
    await open_room(first, "general")
    await open_room(second, "general")

    await first.get_by_role("button", name="Sign out").click()
    await expect(first).to_have_url(re.compile(r"/login\?reason=logged_out$"))
    await expect(first.locator("#login-notice")).to_have_text("You signed out.")
    await expect(second).to_have_url(re.compile(r"/login\?reason=ended$"))
    await expect(second.locator("#login-notice")).to_contain_text("Your session ended")


async def test_revoking_a_session_from_the_account_page_ends_that_device(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    user = await server.make_user("hana")
    laptop = await browsing.page(user)
    phone = await browsing.page(user, phone=True)
    await open_room(phone, "general")

    await laptop.goto("/account")
    rows = laptop.locator("#sessions tbody tr")
    await expect(rows).to_have_count(2)
    await expect(laptop.locator("#sessions tr.current")).to_contain_text("this device")
    await expect(rows.first).to_contain_text("Headless Chrome on Linux")
    await expect(rows.first).to_contain_text("127.0.0.1")
    other = laptop.locator("#sessions tbody tr:not(.current)")
    await other.get_by_role("button", name=re.compile(r"^Revoke")).click()
    await expect(rows).to_have_count(1)
    await expect(phone).to_have_url(re.compile(r"/login\?reason=ended$"))
    await expect(phone.locator("#login-notice")).to_contain_text("Your session ended")


async def test_disable_and_expiry_end_live_chats(browsing: Browsing,
                                                 server: BrowserServer) -> None:
    await server.room("general")
    admin = await server.admin()
    ivan = await server.make_user("ivan")
    judy = await server.make_user("judy")
    ivan_page = await browsing.page(ivan)
    judy_page = await browsing.page(judy)
    await open_room(ivan_page, "general")
    await open_room(judy_page, "general")

    console = await browsing.page(admin)
    await console.goto("/admin/users")
    await console.locator("tr[data-username='ivan']").get_by_role("button",
                                                                 name="Disable").click()
    await expect(console.locator("tr[data-username='ivan']")).to_contain_text("disabled")
    await expect(ivan_page).to_have_url(re.compile(r"/login\?reason=disabled$"))
    await expect(ivan_page.locator("#login-notice")).to_contain_text("Your session ended")

    # Expiry: the server's clock passes the idle timeout and housekeeping ends the session.
    server.clock.advance(server.settings.session_idle_seconds + 60)
    await server.services.sessions.purge_expired()
    await expect(judy_page).to_have_url(re.compile(r"/login\?reason=idle$"))
    await expect(judy_page.locator("#login-notice")).to_contain_text("inactivity")


async def test_server_restart_mid_conversation_reconnects_and_fills_the_gap(
        browsing: Browsing, server: BrowserServer) -> None:
    browsing.allow = NETWORK_NOISE  # the browser logs its refused reconnects itself
    room = await server.room("general")
    kate = await server.make_user("kate")
    leo = await server.make_user("leo")
    page = await browsing.page(kate)
    await open_room(page, "general")
    composer = page.get_by_label("Message #general")
    await composer.fill("before the restart")
    await composer.press("Enter")
    await server.post(room, leo, "also before", "leo-0")
    messages = page.locator("#messages .message .text")
    await expect(messages).to_have_text(["before the restart", "also before"])
    conn = page.locator("#conn-state")
    await expect(page.locator("#presence li")).to_have_text(["Kate (you)"])

    async def while_down(live: BrowserServer) -> None:
        await expect(conn).to_have_attribute("data-state", re.compile("offline|connecting"))
        await expect(conn).to_contain_text(re.compile("Offline|Reconnecting"))
        await expect(page.locator("#presence li")).to_have_count(0)  # nobody claimed online
        for k in (1, 2, 3):  # stored while the page cannot hear: only resume brings them
            await live.post(room, leo, f"while you were away {k}", f"leo-{k}")
        await composer.fill("typed while offline")
        await composer.press("Enter")
        await expect(page.locator("#messages .message.pending")).to_have_count(1)

    await server.restart(while_down)
    await expect(conn).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(page.locator("#presence li")).to_have_text(["Kate (you)"])
    expected = ["before the restart", "also before", "while you were away 1",
                "while you were away 2", "while you were away 3", "typed while offline"]
    await expect(messages).to_have_text(expected)
    await expect(page.locator("#messages .message.pending")).to_have_count(0)
    await server.post(room, leo, "live again", "leo-9")
    await expect(messages).to_have_text([*expected, "live again"])
    await expect_seqs(page, list(range(1, 8)))

    # A second restart with more missed than one resume answer holds (MISSED_LIMIT).
    async def flood(live: BrowserServer) -> None:
        await expect(conn).not_to_have_attribute("data-state", "connected")
        # Group-committed, at most 20 at a time: each post first reads the room through the
        # pool (30 connections, 2 s wait), which 505 at once exhausted on a busy CI.
        gate = asyncio.Semaphore(20)

        async def post(k: int) -> None:
            async with gate:
                await live.post(room, leo, f"backlog {k}", f"backlog-{k}")
        await asyncio.gather(*(post(k) for k in range(MISSED_LIMIT + 5)))

    await server.restart(flood)
    await expect(conn).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(page.locator("#messages .message")).to_have_count(7 + MISSED_LIMIT + 5)
    await expect_seqs(page, list(range(1, 8 + MISSED_LIMIT + 5)))
