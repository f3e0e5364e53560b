"""TOTP end to end in Chromium: set up an authenticator app from the account page (the QR
image loads under the CSP, the key is shown for typing in), save the recovery codes, then
sign in with password + code, and with a recovery code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import expect_clipboard
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = "/tmp/totp-shots"


async def sign_in(page: Any, username: str) -> None:
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def sign_out(page: Any) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role(
        "button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login\?reason=logged_out$"))


async def shot(page: Any, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # else the sticky bar lands mid-picture
    await page.screenshot(path=artifact(name), full_page=True)
    await page.screenshot(path=f"{SHOTS}/{name}", full_page=True)


async def test_enrol_totp_then_sign_in_with_a_code_and_with_a_recovery_code(
        browsing: Browsing, server: BrowserServer) -> None:
    Path(SHOTS).mkdir(exist_ok=True)
    await server.room("general")
    await server.make_user("tess")
    context = await browsing.context(permissions=["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    await sign_in(page, "tess")
    await page.goto("/account")
    await page.locator("#second-factor-link").click()
    await expect(page).to_have_url(re.compile(r"/account/second-factor$"))
    await page.get_by_role("button", name="Set up an authenticator app").click()
    qr = page.locator("#totp-qr")
    await expect(qr).to_be_visible()
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")  # loaded
    secret = await page.locator("#totp-secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    await shot(page, "totp-enrol.png")
    await page.locator("#f-code").fill(pyotp.TOTP(secret).at(server.clock.now()))
    await page.get_by_role("button", name="Turn on").click()
    codes_box = page.locator("#recovery-codes")
    await expect(codes_box).to_be_visible()
    codes = (await codes_box.input_value()).split("\n")
    assert len(codes) == 10 and all(re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){2}", c)
                                    for c in codes)
    await page.get_by_role("button", name="Copy").click()
    await expect_clipboard(page, "\n".join(codes))
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download").click()
    download = await download_info.value
    assert download.suggested_filename == "streamzy-recovery-codes.txt"
    saved = await download.path()
    assert saved is not None and Path(saved).read_text().split() == codes
    await shot(page, "totp-recovery-codes.png")
    await page.get_by_role("link", name="I saved them, continue").click()
    await sign_out(page)

    server.clock.advance(30)  # the next step: the enrolment's code is spent
    await sign_in(page, "tess")
    await expect(page).to_have_url(re.compile(r"/login/second-factor"))
    await expect(page.locator("#f-code")).to_have_attribute("autocomplete", "one-time-code")
    await shot(page, "totp-second-step.png")
    await page.locator("#f-code").fill(pyotp.TOTP(secret).at(server.clock.now()))
    await page.get_by_role("button", name="Continue", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/$|/rooms"))
    await page.goto("/rooms")
    await expect(page.get_by_role("navigation", name="Main")).to_contain_text("Tess")
    await sign_out(page)

    await sign_in(page, "tess")
    await page.locator("#use-recovery summary").click()
    await page.locator("#f-recovery").fill(codes[4].lower())
    await page.get_by_role("button", name="Continue with a recovery code").click()
    await page.goto("/account/second-factor")
    await expect(page.locator("#recovery-status")).to_contain_text("9")
    await shot(page, "totp-overview.png")
