"""The admin console in a real browser: queue, users, rooms, bots and the audit log."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from streamzy.guards.context import RequestInfo
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import expect_clipboard, open_room

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
APPLICANT = RequestInfo("203.0.113.7", "Mozilla/5.0 (Windows NT 10.0) Firefox/130.0", "")


async def test_queue_reject_asks_for_a_reason(browsing: Browsing,
                                              server: BrowserServer) -> None:
    admin = await server.admin()
    for name, display in (("spammer", "Totally Legit"), ("nora", "Nora Batty")):
        await server.services.applications.submit(
            name, display, f"{name}@example.org", "Please let me in, I am on the team.",
            APPLICANT)
    page = await browsing.page(admin)
    await page.goto("/admin/applications")
    await expect(page.locator("#nav-pending")).to_contain_text("2")
    card = page.locator(".application[data-username='spammer']")
    await card.locator("summary").click()
    reject = card.get_by_role("button", name="Reject application")
    await reject.click()  # no reason yet: the browser refuses to submit
    await expect(page).to_have_url(re.compile(r"/admin/applications$"))
    await card.get_by_label("Reason for rejection").fill("Not a member of the team.")
    await reject.click()
    await expect(page.locator("#queue-notice")).to_contain_text("rejected")
    await expect(page.locator(".application")).to_have_count(1)
    await expect(page.locator("#nav-pending")).to_contain_text("1")
    await expect(page.locator("#pending-count")).to_have_text("1")
    rows = await server.audit_rows("application_rejected")
    assert len(rows) == 1 and "Not a member" in rows[0].detail


async def test_users_rooms_bots_and_audit(browsing: Browsing, server: BrowserServer) -> None:
    admin = await server.admin()
    await server.room("general")
    await server.make_user("mia")
    for _ in range(server.settings.lockout_threshold):
        await server.services.accounts.authenticate("mia", "wrong password!", APPLICANT)
    context = await browsing.context(cookie=await server.cookie_for(admin))
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()

    # Users: unlock, disable/enable, admin role, reset password (shown once, with copy).
    await page.goto("/admin/users")
    row = page.locator("tr[data-username='mia']")
    await expect(row).to_contain_text("locked")
    await row.get_by_role("button", name="Unlock").click()
    await expect(page.locator("#users-notice")).to_have_text(
        "@mia is unlocked and can try to sign in again.")
    await expect(row).not_to_contain_text("locked")
    await row.get_by_role("button", name="Disable").click()
    await expect(page.locator("#users-notice")).to_contain_text("@mia is disabled")
    await expect(row.locator(".tag.danger")).to_have_text("disabled")
    await row.get_by_role("button", name="Enable").click()
    await expect(row.locator(".tag.ok")).to_have_text("active")
    await row.get_by_role("button", name="Make admin").click()
    await expect(row).to_contain_text("Admin")
    await row.get_by_role("button", name="Remove admin").click()
    await expect(row).to_contain_text("Member")
    await page.screenshot(path=artifact("admin-users.png"), full_page=True)
    await row.get_by_role("button", name="Reset password").click()
    await expect(page.get_by_role("heading", name="Password reset")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("shown only once")
    one_time = page.locator("#one-time-password")
    await expect(one_time).to_have_value(re.compile(r"^\S{12,}$"))
    password = await one_time.input_value()
    await page.get_by_role("button", name="Copy").click()
    await expect_clipboard(page, password)

    # Rooms: create a private one and invite a member, who can then open it.
    await page.goto("/admin/rooms")
    await page.get_by_label("Room name").fill("ops")
    await page.get_by_label("Topic").fill("Pager duty and incidents")
    await page.get_by_label("Private (invitation only)").check()
    await page.get_by_role("button", name="Create room").click()
    await expect(page.locator("#rooms-notice")).to_contain_text("#ops was created as a private")
    ops = page.locator("tr[data-room='ops']")
    await expect(ops.locator(".tag")).to_have_text("private")
    olga = await server.make_user("olga")
    await ops.get_by_label("Username to invite to #ops").fill("olga")
    await ops.get_by_role("button", name="Invite").click()
    await expect(page.locator("#rooms-notice")).to_have_text("@olga can now join #ops.")
    member = await browsing.page(olga)
    await member.goto("/rooms")
    await expect(member.locator("#room-list")).to_contain_text("#ops")
    await open_room(member, "ops")
    outsider = await browsing.page(await server.make_user("pete"))
    response = await outsider.goto("/rooms/ops")  # a private room does not even exist for him
    assert response is not None and response.status == 404
    browsing.allow = re.compile(r"status of 404 .* @ http://[^ ]+/rooms/ops$")

    # Bots: the token is shown once with a copy button; revoking marks it.
    await page.goto("/admin/bots")
    await page.get_by_label("Bot username").fill("deploy-bot")
    await page.get_by_label("Display name").fill("Deploy Bot")
    await page.get_by_label("#general").check()
    await page.get_by_role("button", name="Create bot").click()
    await expect(page.get_by_role("heading", name="Bot created")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("shown only once")
    bot_token = page.locator("#bot-token")
    await expect(bot_token).to_have_value(re.compile(r"^szb_\S+$"))
    token = await bot_token.input_value()
    await page.get_by_role("button", name="Copy").click()
    await expect_clipboard(page, token)
    await page.get_by_role("link", name="Back to bots").click()
    bot_row = page.locator("#bots tbody tr").first
    await expect(bot_row).to_contain_text("@deploy-bot")
    await bot_row.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#bots-notice")).to_contain_text("revoked")
    await expect(bot_row.locator(".tag.danger")).to_have_text("revoked")

    # Audit: filter by event, user and time range; export CSV and JSON.
    await page.goto("/admin/audit")
    await page.get_by_label("Event").fill("account_changed")
    await page.get_by_role("button", name="Filter").click()
    # Each filter is a page load: wait for the filtered page, then for its rows.
    await expect(page).to_have_url(re.compile(r"[?&]event=account_changed(&|$)"))
    events = page.locator("#audit tbody tr td:nth-child(2)")
    await expect(events.first).to_have_text("account_changed")
    await expect(events.nth(5)).to_have_text("account_changed")  # at least six
    await expect(events.filter(has_not_text=re.compile(r"^account_changed$"))).to_have_count(0)
    await page.get_by_label("Event").fill("")
    await page.get_by_label("User id").fill(str(admin.id))
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(rf"[?&]event=&user_id={admin.id}(&|$)"))
    users = page.locator("#audit tbody tr td:nth-child(3)")
    await expect(users.first).to_have_text(str(admin.id))
    await expect(users.filter(has_not_text=re.compile(rf"^{admin.id}$"))).to_have_count(0)
    await page.get_by_label("From (UTC)").fill("2030-01-02T00:00")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#audit .empty")).to_have_text("No events match.")
    await page.get_by_label("From (UTC)").fill("2029-12-31T00:00")
    await page.get_by_label("To (UTC)").fill("2030-01-01T01:00")
    await page.get_by_role("button", name="Filter").click()
    await expect(users.first).to_have_text(str(admin.id))
    await page.screenshot(path=artifact("admin-audit.png"), full_page=True)

    async with page.expect_download() as csv_download:
        await page.get_by_role("button", name="Export CSV").click()
    csv_path = await (await csv_download.value).path()
    table = list(csv.DictReader(io.StringIO(Path(csv_path).read_text())))
    assert table and {r["user_id"] for r in table} == {str(admin.id)}
    async with page.expect_download() as json_download:
        await page.get_by_role("button", name="Export JSON").click()
    json_path = await (await json_download.value).path()
    records = json.loads(Path(json_path).read_text())
    assert {r["user_id"] for r in records} == {admin.id}
    assert records[0]["event"] == "audit_exported"  # the CSV export, itself on the record
    assert len(records) == len(table) + 1
