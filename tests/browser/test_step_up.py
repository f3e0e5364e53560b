"""Step-up in a real browser: an admin whose proof has expired is taken to the confirm page,
proves it with the password and comes back to finish; exports (sent by script) go there
too; the security and key pages of the console."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from streamzy.storage.models import User
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = Path("/tmp/stepup-shots")


def shot(name: str) -> str:
    """A screenshot kept with the test artifacts and copied where it is looked at."""
    path = artifact(name)
    SHOTS.mkdir(exist_ok=True)
    return str(path)


def keep(name: str) -> None:
    shutil.copy(artifact(name), SHOTS / name)


async def test_an_expired_step_up_is_renewed_on_the_way_to_granting_admin(
        browsing: Browsing, server: BrowserServer) -> None:
    admin = await server.admin()
    await server.make_user("mia")
    page = await browsing.page(admin)
    server.clock.advance(server.settings.step_up_seconds + 1)  # the sign-in no longer counts
    await page.goto("/admin/users")
    row = page.locator("tr[data-username='mia']")
    await row.get_by_role("button", name="Make admin").click()
    await expect(page).to_have_url(re.compile(r"/account/confirm\?next=/admin/users$"))
    await expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    await expect(page.locator("#step-up-notice")).to_contain_text("@admin")
    await page.screenshot(path=shot("step-up-confirm.png"), full_page=True)
    keep("step-up-confirm.png")
    await page.get_by_label("Password").fill("not my password at all")
    await page.get_by_role("button", name="Confirm", exact=True).click()
    await expect(page.locator("#step-up-error")).to_contain_text("not correct")
    browsing.allow = re.compile(r"status of 400 .* @ http://[^ ]+/account/confirm$")
    await page.screenshot(path=shot("step-up-wrong.png"), full_page=True)
    keep("step-up-wrong.png")
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Confirm", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/admin/users$"))
    await row.get_by_role("button", name="Make admin").click()
    await expect(page.locator("#users-notice")).to_have_text("@mia is now an admin.")
    await expect(row).to_contain_text("Admin")
    assert len(await server.audit_rows("step_up_passed")) == 1
    assert len(await server.audit_rows("step_up_failed")) == 1


async def test_an_export_sent_by_script_goes_to_the_step_up_page_first(
        browsing: Browsing, server: BrowserServer) -> None:
    member = await server.make_user("mia")
    page = await browsing.page(member)
    server.clock.advance(server.settings.step_up_seconds + 1)
    await page.goto("/account")
    # The script's request is refused (403 step_up_required, which the console notes) and
    # the page goes to the step-up page instead of failing.
    browsing.allow = re.compile(r"status of 403 .* @ http://[^ ]+/account$")
    await page.get_by_role("button", name="Export my messages").click()
    await expect(page).to_have_url(re.compile(r"/account/confirm\?next=%2Faccount$"))
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Confirm", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/account$"))
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Export my messages").click()
    assert (await download.value).suggested_filename.endswith(".json")


async def test_the_security_and_key_pages(browsing: Browsing, server: BrowserServer) -> None:
    admin = await server.admin()
    async with server.services.db.unit() as db:  # the admin has set up a second factor
        await db.execute(update(User).where(User.id == admin.id).values(has_second_factor=True))
    await server.make_user("mia")
    await server.room("general")
    page = await browsing.page(admin)
    await page.goto("/admin/users")
    await page.get_by_role("link", name="Security").click()
    await expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    await expect(page.locator("#coverage-admins")).to_contain_text("1")
    await expect(page.locator("#missing")).to_contain_text("@mia")
    await page.get_by_label("Required for everyone").check()
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.locator("#security-notice")).to_contain_text("required for everyone")
    await expect(page.locator("#coverage-owed")).to_contain_text("1 account(s)")
    await page.screenshot(path=shot("admin-security.png"), full_page=True)
    keep("admin-security.png")
    await page.get_by_role("link", name="Keys").click()
    await expect(page.locator("#master-keys tbody tr")).to_have_count(1)
    await page.get_by_role("button", name="Re-wrap room keys now").click()
    await expect(page.locator("#rewrap-result")).to_contain_text("0 room key(s) re-wrapped")
    await page.screenshot(path=shot("admin-keys.png"), full_page=True)
    keep("admin-keys.png")
