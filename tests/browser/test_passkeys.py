"""Passkeys in real Chromium with a CDP virtual authenticator (issue 16, item 2): add one
from the account page, sign in with it alone, then use it as the second step after the
password.

WebAuthn needs a secure context and a domain as RP id (Chromium refuses IP addresses), so
this journey opens the server as http://localhost:<port> (a secure context by definition)
with STREAMZY_WEBAUTHN_RP_ID=localhost.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from streamzy.storage.models import Session as SessionRow
from tests.browser.conftest import BrowserServer, Browsing, expect
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SHOTS = Path("/tmp/passkeys-shots")


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"webauthn_rp_id": "localhost", "rate_second_factor": "1000/5m"}


async def virtual_authenticator(context: Any, page: Any) -> tuple[Any, str]:
    """A platform authenticator that holds discoverable credentials and verifies its user."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


async def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / name), full_page=True)


async def sign_out(page: Any) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role(
        "button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))


async def signed_in_with(server: BrowserServer) -> list[str]:
    async with server.services.db.unit() as db:
        rows = await db.execute(select(SessionRow.signed_in_with).order_by(SessionRow.id))
        return [value for (value,) in rows]


async def test_add_a_passkey_then_sign_in_with_it_alone_and_as_second_step(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.make_user("alice")
    origin = f"http://localhost:{server.port}"
    context = await browsing.context()
    page = await context.new_page()
    cdp, authenticator_id = await virtual_authenticator(context, page)

    # Sign in with the password (no second factor yet) and add a passkey.
    await page.goto(origin + "/login")
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator(".nav-account")).to_be_visible()
    await page.goto(origin + "/account")
    await page.get_by_role("link", name="Passkeys").click()
    await expect(page).to_have_url(origin + "/account/passkeys")
    await expect(page.locator("#no-passkeys")).to_be_visible()
    await page.get_by_label("Name for the new passkey").fill("Work <laptop>")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page).to_have_url(origin + "/account/passkeys?added=1")
    await expect(page.locator("#passkey-list .passkey-name")).to_have_text("Work <laptop>")
    await shot(page, "1-passkey-added.png")
    credentials = (await cdp.send("WebAuthn.getCredentials",
                                  {"authenticatorId": authenticator_id}))["credentials"]
    assert len(credentials) == 1 and credentials[0]["isResidentCredential"]

    # Signed out, the passkey alone signs in: no username, no password.
    await sign_out(page)
    await expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    await shot(page, "2-login-with-passkey-button.png")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator(".nav-account")).to_be_visible()
    await expect(page).to_have_url(origin + "/rooms")
    await shot(page, "3-signed-in-by-passkey.png")

    # With a passkey the password is no longer enough: the second step asks for it.
    await sign_out(page)
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(TEST_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/login/second-factor"))
    await expect(page.locator(".nav-account")).to_have_count(0)
    await shot(page, "4-second-step.png")
    await page.get_by_role("button", name="Use a passkey").click()
    await expect(page.locator(".nav-account")).to_be_visible()
    await shot(page, "5-signed-in-with-password-and-passkey.png")
    assert (await signed_in_with(server))[-1] == "passkey"

    # A failure is shown in the page: the authenticator loses its credential.
    await sign_out(page)
    await cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator_id})
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator("#passkey-error")).to_be_visible()
    await shot(page, "6-passkey-error.png")
    browsing.allow = re.compile(r"status of 40[13]")  # the refused answer's own console line
