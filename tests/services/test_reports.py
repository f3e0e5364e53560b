"""Reporting messages without a server: who may report, the sealed reason, the queue with
each message opened in its context, and deciding a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from streamzy.services.errors import Forbidden, NotFound, RateLimited
from streamzy.services.message_writer import Sender
from streamzy.storage.models import AuditEvent, Report
from streamzy.wiring import Services
from tests.conftest import BACKEND, CLIENT, audit_rows, make_user

REASON = "threatening-words-PLAINTEXT-7731"


async def room_with_messages(services: Services, count: int = 10) -> tuple[int, dict[int, int],
                                                                           Sender, Sender]:
    owner = await make_user(services, "olivia")
    alice = await make_user(services, "alice")
    room = await services.rooms.create(owner.id, "general", "", False, CLIENT)
    await services.rooms.invite(owner.id, room.id, "alice", CLIENT)
    speaker = Sender(owner.id, owner.username, owner.display_name)
    reporter = Sender(alice.id, alice.username, alice.display_name)
    ids = {}
    for n in range(1, count + 1):
        sent = await services.posting.send(speaker, room, f"m{n}", f"message {n}", CLIENT)
        ids[sent.seq] = sent.id
    return room.id, ids, speaker, reporter


async def test_a_member_reports_a_message_and_the_reason_is_sealed(
        services: Services, tmp_path: Path) -> None:
    room, ids, _, alice = await room_with_messages(services)
    receipt = await services.reports.report(alice.user_id, room, ids[5], REASON, CLIENT)
    assert not receipt.duplicate
    again = await services.reports.report(alice.user_id, room, ids[5], "once more", CLIENT)
    assert again.id == receipt.id and again.duplicate
    async with services.db.unit() as db:
        [row] = list((await db.execute(select(Report))).scalars())
        details = [r.detail for r in (await db.execute(select(AuditEvent))).scalars()]
    assert (row.status, row.message_id, row.reporter_id) == ("open", ids[5], alice.user_id)
    assert REASON.encode() not in bytes(row.reason_ciphertext)
    assert not any(REASON in d for d in details)  # the audit trail never holds it
    [audited] = await audit_rows(services, "message_reported")
    assert json.loads(audited.detail) == {"room_id": room, "message_id": ids[5],
                                          "report_id": receipt.id}
    if BACKEND == "sqlite":  # nothing on disk spells it, in the file or its WAL
        for path in tmp_path.glob("streamzy.db*"):
            assert REASON.encode() not in path.read_bytes(), path.name
    else:
        async with services.db.unit() as db:
            dump = await db.execute(text("SELECT reports::text FROM reports"))
            assert not any(REASON in value for (value,) in dump)


async def test_only_members_report_messages_of_their_room(services: Services) -> None:
    room, ids, owner, _ = await room_with_messages(services)
    stranger = await make_user(services, "sam")
    with pytest.raises(Forbidden) as outsider:
        await services.reports.report(stranger.id, room, ids[1], "x", CLIENT)
    assert outsider.value.code == "not_a_member"
    other = await services.rooms.create(owner.user_id, "other", "", False, CLIENT)
    with pytest.raises(NotFound) as elsewhere:  # a message id from another room
        await services.reports.report(owner.user_id, other.id, ids[1], "x", CLIENT)
    assert elsewhere.value.code in ("unknown_message", "not_a_member")
    with pytest.raises(NotFound) as nothing:
        await services.reports.report(owner.user_id, room, 999_999, "x", CLIENT)
    assert nothing.value.code == "unknown_message"
    assert len(await audit_rows(services, "room_access_denied")) == 1


async def test_reports_per_person_are_limited(services: Services) -> None:
    room, ids, _, alice = await room_with_messages(services, 25)
    for seq in range(1, 21):
        await services.reports.report(alice.user_id, room, ids[seq], "", CLIENT)
    with pytest.raises(RateLimited) as limited:
        await services.reports.report(alice.user_id, room, ids[21], "", CLIENT)
    assert limited.value.limit == "reports"


async def test_the_queue_opens_the_message_with_its_context_and_decides(
        services: Services) -> None:
    room, ids, _, alice = await room_with_messages(services)
    admin = await make_user(services, "root", admin=True)
    first = await services.reports.report(alice.user_id, room, ids[5], REASON, CLIENT)
    second = await services.reports.report(alice.user_id, room, ids[1], "", CLIENT)
    queue = await services.reports.queue("open", 1, admin.id, CLIENT)
    assert queue.open_count == 2 and not queue.has_more
    view = queue.reports[0]
    assert (view.id, view.room_name, view.reporter, view.reason) == (
        first.id, "general", "alice", REASON)
    assert view.message is not None and view.message.text == "message 5"
    assert [m.text for m in view.before] == ["message 2", "message 3", "message 4"]
    assert [m.text for m in view.after] == ["message 6", "message 7", "message 8"]
    edge = queue.reports[1]
    assert edge.id == second.id and edge.before == [] and edge.reason == ""
    [viewed] = await audit_rows(services, "reports_viewed")
    assert viewed.user_id == admin.id
    assert json.loads(viewed.detail)["report_ids"] == f"{first.id},{second.id}"

    await services.reports.decide(admin.id, first.id, "resolved", CLIENT)
    await services.reports.decide(admin.id, second.id, "dismissed", CLIENT)
    assert (await services.reports.queue("open", 1, admin.id, CLIENT)).reports == []
    decided = await services.reports.queue("all", 1, admin.id, CLIENT)
    assert {(r.id, r.status, r.resolved_by) for r in decided.reports} == {
        (first.id, "resolved", "root"), (second.id, "dismissed", "root")}
    assert len(await audit_rows(services, "report_resolved")) == 1
    assert len(await audit_rows(services, "report_dismissed")) == 1
    with pytest.raises(NotFound):
        await services.reports.decide(admin.id, 999_999, "resolved", CLIENT)
    # Reported again after a decision: a new report.
    third = await services.reports.report(alice.user_id, room, ids[5], "still", CLIENT)
    assert not third.duplicate and third.id not in (first.id, second.id)
