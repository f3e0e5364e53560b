"""The audit page shows when the chain was last verified and what was found; "Verify now"
is an admin-only, CSRF-protected, rate-limited, audited POST. Against the real server."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import update

from streamzy.storage.models import AuditEvent
from tests.conftest import CLIENT, LiveServer, csrf_of, login, post_form
from tests.waiting import wait_until
from tests.web.test_admin import _admin_client

STATE = re.compile(r'<p class="notice [a-z]+" id="chain-state" data-state="([a-z]+)"[^>]*>'
                   r'<strong>([^<]*(?:<time[^>]*>[^<]*</time>[^<]*)?)</strong>')


def chain_state(page: str) -> tuple[str, str]:
    match = STATE.search(page)
    assert match, page
    return match.group(1), re.sub(r"<[^>]+>", "", match.group(2))


async def test_verify_now_shows_an_intact_chain_and_is_audited(server: LiveServer) -> None:
    async with _admin_client(server) as admin:
        page = await admin.get("/admin/audit")
        assert chain_state(page.text) == ("never", "The audit chain has not been verified yet.")
        assert 'action="/admin/audit/verify"' in page.text
        done = await post_form(admin, "/admin/audit/verify", page="/admin/audit")
        assert done.status_code == 302
        assert done.headers["location"] == "/admin/audit#chain"
        rows = await server.audit_rows()
        page = await admin.get("/admin/audit")
    state, text = chain_state(page.text)
    assert state == "intact"
    when = server.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    # Every row up to the verification itself (which is audited after it).
    assert text == f"Chain last verified {when} UTC: intact, {len(rows) - 1} rows"
    [verified] = await server.audit_rows("audit_chain_verified")
    root = next(r for r in rows if r.event == "login_succeeded").user_id
    assert verified.user_id == root and verified.client_ip == "127.0.0.1"
    assert json.loads(verified.detail)["rows"] == len(rows) - 1


async def test_a_broken_chain_is_shown_prominently(server: LiveServer) -> None:
    async with _admin_client(server) as admin:
        first = (await server.audit_rows())[0]
        async with server.services.db.unit() as db:  # someone edits the trail in the database
            await db.execute(update(AuditEvent).where(AuditEvent.id == first.id)
                             .values(client_ip="198.51.100.1"))
        assert (await post_form(admin, "/admin/audit/verify", page="/admin/audit")
                ).status_code == 302
        page = await admin.get("/admin/audit")
    assert chain_state(page.text) == ("broken", f"Chain BROKEN at row {first.id} (edited)")
    assert 'role="alert"' in page.text
    [broken] = await server.audit_rows("audit_chain_broken")
    assert json.loads(broken.detail)["first_bad"] == first.id


async def test_the_servers_own_verification_is_shown(server: LiveServer) -> None:
    await server.services.audit("logout", CLIENT, 1)
    report = await server.services.audit_log.verify_if_due()  # what the periodic job runs
    assert report is not None and report.ok
    async with _admin_client(server) as admin:
        page = await admin.get("/admin/audit")
    assert chain_state(page.text)[1].endswith(f"intact, {report.rows} rows")
    assert await server.audit_rows("audit_chain_verified") == []  # routine: state only


async def test_verify_now_needs_an_admin_a_csrf_token_and_a_post(server: LiveServer) -> None:
    await server.make_user("bob")
    async with server.client() as bob:
        assert (await login(bob, "bob")).status_code == 302
        token = await csrf_of(bob, "/account")
        refused = await bob.post("/admin/audit/verify", data={"csrf_token": token})
        assert refused.status_code == 403
    async with _admin_client(server) as admin:
        assert (await admin.post("/admin/audit/verify", data={})).status_code == 403
        assert (await admin.get("/admin/audit/verify")).status_code == 405
    assert await server.services.audit_log.last_verification() is None


async def test_verify_now_is_rate_limited(server: LiveServer) -> None:
    async with _admin_client(server) as admin:
        token = await csrf_of(admin, "/admin/audit")
        codes = [(await admin.post("/admin/audit/verify", data={"csrf_token": token}))
                 .status_code for _ in range(6)]
    assert codes == [302] * 5 + [429]
    assert len(await server.audit_rows("audit_chain_verified")) == 5


async def test_a_long_verification_goes_on_after_the_answer(
        server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console does not hold the request for a whole-table walk: with no time to wait,
    the POST answers at once and the verification still completes and is recorded."""
    monkeypatch.setattr("streamzy.web.admin.VERIFY_WAIT_SECONDS", 0.0)
    async with _admin_client(server) as admin:
        done = await post_form(admin, "/admin/audit/verify", page="/admin/audit")
        assert done.status_code == 302

        async def recorded() -> bool:
            return bool(await server.audit_rows("audit_chain_verified"))
        await wait_until(recorded, timeout=30)
        page = await admin.get("/admin/audit")
    assert chain_state(page.text)[0] == "intact"
    assert 'id="chain-running"' not in page.text  # finished: the notice is gone
