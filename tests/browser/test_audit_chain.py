"""The audit page in a real browser: "Verify now" shows the chain intact, then broken at the
row someone edited in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from streamzy.storage.models import AuditEvent
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_verify_now_shows_intact_then_broken(browsing: Browsing,
                                                   server: BrowserServer) -> None:
    admin = await server.admin()
    page = await browsing.page(admin)
    await page.goto("/admin/audit")
    state = page.locator("#chain-state")
    await expect(state).to_have_attribute("data-state", "never")
    await page.get_by_role("button", name="Verify now").click()
    await expect(state).to_have_attribute("data-state", "intact")
    await expect(state).to_contain_text("Chain last verified")
    await expect(state).to_contain_text("intact")

    edited = (await server.audit_rows())[0]
    async with server.services.db.unit() as db:
        await db.execute(update(AuditEvent).where(AuditEvent.id == edited.id)
                         .values(detail='{"nothing": "to see"}'))
    await page.get_by_role("button", name="Verify now").click()
    await expect(state).to_have_attribute("data-state", "broken")
    await expect(state).to_contain_text(f"Chain BROKEN at row {edited.id} (edited)")
    await expect(page.locator("td.event code", has_text="audit_chain_broken")).to_have_count(1)
    await page.screenshot(path=artifact("admin-audit-chain-broken.png"), full_page=False)
    assert browsing.problems() == []
