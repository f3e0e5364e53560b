"""An applicant checks their application with the reference shown once; the admin sees
name conflicts the applicant was not told about and approves under another name."""

from __future__ import annotations

import json

import httpx

from streamzy.guards.context import SYSTEM
from tests.conftest import LiveServer, csrf_of, login
from tests.web.test_apply import GOOD, _apply, reference_in

STATUS_LIMIT = 10  # STREAMZY_RATE_APPLY_STATUS: 10 per 5 minutes


async def _status(client: httpx.AsyncClient, reference: str) -> httpx.Response:
    token = await csrf_of(client, "/apply/status")
    return await client.post("/apply/status", data={"reference": reference, "csrf_token": token})


async def test_the_reference_shows_pending_then_rejected_with_the_reason(
        server: LiveServer) -> None:
    root = await server.make_user("root", admin=True)
    async with server.client() as client:
        reference = reference_in(await _apply(client))
        assert (await client.get("/apply/status")).status_code == 200
        pending = await _status(client, reference)
        assert pending.status_code == 200 and 'data-status="pending"' in pending.text
        # Typed loosely: lower case, spaces instead of dashes.
        loose = await _status(client, reference.lower().replace("-", " "))
        assert 'data-status="pending"' in loose.text
        app = (await server.services.applications.pending())[0]
        await server.services.applications.reject(app.id, root.id, "Not <b>this</b> team.",
                                                  SYSTEM)
        rejected = await _status(client, reference)
    assert 'data-status="rejected"' in rejected.text
    assert "Not &lt;b&gt;this&lt;/b&gt; team." in rejected.text
    viewed = await server.audit_rows("application_status_viewed")
    assert [json.loads(r.detail)["status"] for r in viewed] == ["pending", "pending", "rejected"]
    assert all(reference not in r.detail for r in await server.audit_rows())


async def test_an_unknown_reference_is_a_404_and_audited(server: LiveServer) -> None:
    async with server.client() as client:
        await _apply(client)
        guessed = await _status(client, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF")
        junk = await _status(client, "'; select 1 --")
        empty = await _status(client, "")
    assert guessed.status_code == junk.status_code == 404
    assert "No application has that reference" in guessed.text
    assert 'data-status=' not in guessed.text
    assert empty.status_code == 400
    rows = await server.audit_rows("application_status_unknown")
    assert len(rows) == 1  # throttled: one row per address and window
    assert json.loads(rows[0].detail) == {"well_formed": True}


async def test_status_lookups_need_csrf_and_are_rate_limited(server: LiveServer) -> None:
    async with server.client() as client:
        reference = reference_in(await _apply(client))
        forged = await client.post("/apply/status", data={"reference": reference})
        assert forged.status_code == 403  # it spent one of the 10 (limits run first)
        answers = [(await _status(client, reference)).status_code
                   for _ in range(STATUS_LIMIT)]
        assert answers == [200] * (STATUS_LIMIT - 1) + [429]
        server.clock.advance(31)
        assert (await _status(client, reference)).status_code == 200


async def test_admin_sees_the_conflict_and_approves_under_another_username(
        server: LiveServer) -> None:
    await server.make_user("root", admin=True)
    await server.make_user("alice")
    async with server.client() as applicant:
        first = reference_in(await _apply(applicant))  # "alice" is taken by an account
        second = reference_in(await _apply(applicant, username="bob", email="b@example.org"))
        third = reference_in(await _apply(applicant, username="BOB", email="c@example.org"))
    alice_app, bob_app, bob_again = await server.services.applications.pending()
    async with server.client() as admin:
        await login(admin, "root")
        queue = await admin.get("/admin/applications")
        assert queue.status_code == 200
        assert f'id="conflict-{alice_app.id}"' in queue.text
        assert "already exists" in queue.text
        assert f'href="#application-{bob_again.id}"' in queue.text
        assert f'href="#application-{bob_app.id}"' in queue.text
        token = await csrf_of(admin, "/admin/applications")
        refused = await admin.post(f"/admin/applications/{alice_app.id}/approve",
                                   data={"username": "", "csrf_token": token})
        assert refused.status_code == 409 and "already taken" in refused.text
        approved = await admin.post(f"/admin/applications/{alice_app.id}/approve",
                                    data={"username": "alice.l", "csrf_token": token})
        assert approved.status_code == 200 and "alice.l" in approved.text
        assert (await admin.post(f"/admin/applications/{bob_app.id}/approve",
                                 data={"username": "", "csrf_token": token})).status_code == 200
        # The other "bob" is refused, stays pending, and can be approved under a new name.
        clash = await admin.post(f"/admin/applications/{bob_again.id}/approve",
                                 data={"username": "bob", "csrf_token": token})
        assert clash.status_code == 409
        assert [a.id for a in await server.services.applications.pending()] == [bob_again.id]
        assert (await admin.post(f"/admin/applications/{bob_again.id}/approve",
                                 data={"username": "bob2", "csrf_token": token})
                ).status_code == 200
    async with server.client() as applicant:
        page = await _status(applicant, first)
        assert 'data-status="approved"' in page.text
        assert '<strong id="apply-status-username">alice.l</strong>' in page.text
        assert "bob2" in (await _status(applicant, third)).text
        assert '>bob<' in (await _status(applicant, second)).text
    approved_rows = [json.loads(r.detail) for r in await server.audit_rows("application_approved")]
    assert approved_rows[0]["username"] == "alice.l"
    assert approved_rows[0]["requested_username"] == "alice"
    assert "requested_username" not in approved_rows[1]
    assert GOOD["username"] == "alice"
