"""One person, both second factors, in real Chromium (issue 16): set up an authenticator
app and a passkey from the second-factor page, then sign in with each: password + code,
the passkey alone, and password + passkey.

Opened as http://localhost:<port> (a secure context; Chromium refuses IP addresses as
WebAuthn RP ids) with a CDP virtual authenticator standing in for the device.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from streamzy.storage.models import Session as SessionRow
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.browser.test_passkeys import virtual_authenticator
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = Path("/tmp/identity-shots")


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"webauthn_rp_id": "localhost", "rate_second_factor": "1000/5m"}


async def password_step(page: Any, origin: str) -> None:
    await page.goto(origin + "/login")
    await page.get_by_label("Username").fill("ivy")
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def sign_out(page: Any) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role(
        "button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))


async def test_enrol_totp_and_a_passkey_then_sign_in_with_each(
        browsing: Browsing, server: BrowserServer) -> None:
    SHOTS.mkdir(exist_ok=True)
    await server.make_user("ivy")
    origin = f"http://localhost:{server.port}"
    context = await browsing.context()
    page = await context.new_page()
    await virtual_authenticator(context, page)

    await password_step(page, origin)
    await expect(page.locator(".nav-account")).to_be_visible()
    await page.goto(origin + "/account/second-factor")
    await page.get_by_role("button", name="Set up an authenticator app").click()
    secret = await page.locator("#totp-secret").input_value()
    await page.locator("#f-code").fill(pyotp.TOTP(secret).at(server.clock.now()))
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#recovery-codes")).to_be_visible()
    await page.get_by_role("link", name="I saved them, continue").click()
    await page.goto(origin + "/account/second-factor")
    await page.get_by_label("Name for the new passkey").fill("Phone")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("#passkey-list .passkey-name")).to_have_text("Phone")
    await page.goto(origin + "/account/second-factor")
    await page.screenshot(path=str(SHOTS / "both-factors.png"), full_page=True)
    await sign_out(page)

    # 1. Password, then the code from the app.
    server.clock.advance(30)  # the enrolment's code is spent
    await password_step(page, origin)
    await expect(page).to_have_url(re.compile(r"/login/second-factor"))
    await expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
    await page.screenshot(path=str(SHOTS / "second-step-both.png"), full_page=True)
    await page.locator("#f-code").fill(pyotp.TOTP(secret).at(server.clock.now()))
    await page.get_by_role("button", name="Continue", exact=True).click()
    await expect(page.locator(".nav-account")).to_be_visible()
    await sign_out(page)

    # 2. The passkey alone, from the sign-in page.
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator(".nav-account")).to_be_visible()
    await sign_out(page)

    # 3. Password, then the passkey as the second step.
    await password_step(page, origin)
    await expect(page).to_have_url(re.compile(r"/login/second-factor"))
    await page.get_by_role("button", name="Use a passkey").click()
    await expect(page.locator(".nav-account")).to_be_visible()

    async with server.services.db.unit() as db:
        methods = [m for (m,) in await db.execute(
            select(SessionRow.signed_in_with).order_by(SessionRow.id))]
    # Only the live session remains (each sign-out ended its own); the audit trail has all.
    assert methods == ["passkey"]
    rows = await server.audit_rows("login_succeeded")
    assert [r.detail for r in rows][-4:] == [
        '{"method": "password"}', '{"method": "totp"}',
        '{"method": "passkey", "step": "passkey"}', '{"method": "passkey", "step": "second_factor"}']
