"""The security health page and the alert banner in a real browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamzy.guards.context import RequestInfo
from tests.browser.conftest import BrowserServer, Browsing, expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
SHOTS = Path(os.environ.get("STREAMZY_SHOTS", "/tmp/opshealth-shots"))


async def test_health_page_and_alert_banner(browsing: Browsing, server: BrowserServer) -> None:
    admin = await server.admin()
    attacker = RequestInfo("198.51.100.23", "curl/8", "")
    for _ in range(server.services.settings.alert_threshold(
            "failed_signins_per_address").count):  # type: ignore[union-attr]
        await server.services.audit("login_failed", attacker, None, reason="unknown_user")
    await server.services.alerts.settled()
    page = await browsing.page(admin)
    await page.goto("/admin/health")
    await expect(page.locator("#alert-banner")).to_contain_text("198.51.100.23")
    await expect(page.locator("#health-score")).to_contain_text("%")
    await expect(page.locator("#item-backup")).to_have_attribute("data-status", "fail")
    await expect(page.locator("#item-served-headers")).to_have_attribute("data-status", "pass")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "health.png"), full_page=True)
    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.locator("#alerts-acknowledged")).to_be_visible()
    await expect(page.locator("#alert-banner")).to_have_count(0)
