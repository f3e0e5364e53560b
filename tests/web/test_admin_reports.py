"""/admin/reports: the reported message opened with its context, to admins only; resolve
and dismiss; the reason stays sealed in the database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import select, text

from streamzy.guards.context import SYSTEM
from streamzy.services.message_writer import Sender
from streamzy.storage.models import Report
from tests.conftest import LiveServer, csrf_of, login
from tests.realtime.helpers import connected, signed_in_cookie

REASON = "calls-people-names-SEALED-4412"


async def reported_room(server: LiveServer) -> tuple[int, dict[int, int]]:
    """#general with ten messages by olivia; alice reports the fifth over her socket."""
    services = server.services
    olivia = await server.make_user("olivia")
    cookie = await signed_in_cookie(server, "alice")
    room = await services.rooms.create(olivia.id, "general", "", False, SYSTEM)
    await services.rooms.invite(olivia.id, room.id, "alice", SYSTEM)
    speaker = Sender(olivia.id, "olivia", "Olivia")
    ids = {}
    for n in range(1, 11):
        text_ = "a < b & c" if n == 6 else f"message {n}"
        ids[n] = (await services.posting.send(speaker, room, f"m{n}", text_, SYSTEM)).id
    alice = await connected(server, cookie=cookie)
    try:
        ack = await alice.call("report", {"room": room.id, "id": ids[5], "reason": REASON})
        assert ack["ok"], ack
    finally:
        await alice.close()
    return room.id, ids


async def test_admins_see_the_reported_message_in_context_and_resolve_it(
        server: LiveServer) -> None:
    room, ids = await reported_room(server)
    await server.make_user("root", admin=True)
    async with server.client() as admin:
        assert (await login(admin, "root")).status_code == 302
        page = await admin.get("/admin/reports")
        assert page.status_code == 200
        assert 'id="nav-reports"' in page.text
        card = re.search(r'<li class="card report".*?</li>\s*</ol>', page.text, re.S)
        assert card, page.text
        body = card.group(0)
        assert REASON in body and "@alice" in body
        assert [int(s) for s in re.findall(r'data-seq="(\d+)"', body)] == [2, 3, 4, 5, 6, 7, 8]
        assert f'id="reported-{ids[5]}"' in body and "message 5" in body
        assert "a &lt; b &amp; c" in body  # message text is escaped, never markup
        [report_id] = [int(x) for x in re.findall(r'id="report-(\d+)"', page.text)]

        token = await csrf_of(admin, "/admin/reports")
        assert (await admin.get(f"/admin/reports/{report_id}/resolve")).status_code == 405
        done = await admin.post(f"/admin/reports/{report_id}/resolve",
                                data={"csrf_token": token})
        assert done.status_code == 302
        assert done.headers["location"] == f"/admin/reports?done=resolved&report={report_id}"
        after = await admin.get(done.headers["location"])
        assert f"Report {report_id} was resolved." in after.text
        assert 'id="reports-empty"' in after.text
        resolved = await admin.get("/admin/reports?status=resolved")
        assert "Resolved by @root" in resolved.text
        missing = await admin.post("/admin/reports/999999/dismiss", data={"csrf_token": token})
        assert missing.status_code == 404
        bad = await admin.get("/admin/reports?status=everything")
        assert bad.status_code == 400
    async with server.services.db.unit() as db:
        row = (await db.execute(select(Report))).scalar_one()
    assert row.status == "resolved" and row.resolved_at is not None
    viewed = await server.audit_rows("reports_viewed")
    assert viewed and json.loads(viewed[0].detail)["report_ids"] == str(report_id)
    assert len(await server.audit_rows("report_resolved")) == 1
    assert room


async def test_only_admins_see_reports(server: LiveServer) -> None:
    await reported_room(server)
    async with server.client() as member:
        assert (await login(member, "olivia")).status_code == 302
        assert (await member.get("/admin/reports")).status_code == 403
        token = await csrf_of(member, "/rooms")
        refused = await member.post("/admin/reports/1/dismiss", data={"csrf_token": token})
        assert refused.status_code == 403
    async with server.services.db.unit() as db:
        assert (await db.execute(select(Report.status))).scalar_one() == "open"


async def test_the_reason_is_not_plaintext_in_the_database(server: LiveServer) -> None:
    await reported_room(server)
    url = server.services.settings.database_url
    if url.startswith("sqlite"):  # the raw bytes of the file and its write-ahead log
        db_path = Path(url.split(":///", 1)[1])
        for path in (db_path, Path(f"{db_path}-wal")):
            if path.exists():
                assert REASON.encode() not in path.read_bytes(), path
    async with server.services.db.unit() as db:
        for statement in ("SELECT * FROM reports", "SELECT * FROM audit_events"):
            rows = (await db.execute(text(statement))).all()
            assert REASON not in " ".join(str(r) for r in rows), statement
