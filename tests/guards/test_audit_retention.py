"""Audit retention: old rows go, oldest first, in batches; the chain still verifies from
the anchor; the purge is audited and never deletes rows whose chain is broken."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy import update

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.audit_chain import derive_key
from streamzy.guards.audit_retention import purge
from streamzy.storage.models import AuditEvent
from streamzy.wiring import Services, build_services
from tests.conftest import audit_rows
from tests.guards.test_audit_chain import change, record

DAY = 86400


@pytest.fixture
async def kept_30_days(settings_factory: Callable[..., Settings],
                       clock: ManualClock) -> AsyncIterator[Services]:
    built = build_services(settings_factory(audit_retention_days=30,
                                            message_retention_days=7), clock)
    try:
        yield built
    finally:
        await built.close()


async def test_only_rows_past_the_period_go_and_the_chain_still_verifies(
        kept_30_days: Services, clock: ManualClock) -> None:
    services = kept_30_days
    old = await record(services, 7)
    clock.advance(20 * DAY)
    young = [i for i in await record(services, 4) if i not in old]
    clock.advance(11 * DAY)  # the first 7 are 31 days old, the others 11
    dry = await services.audit_log.purge(dry_run=True)
    assert dry is not None and (dry.rows, dry.dry_run) == (7, True)
    assert len(await audit_rows(services)) == 11  # a dry run deletes nothing

    report = await services.audit_log.purge()
    assert report is not None and (report.rows, report.anchor_id, report.broken_at) == (
        7, old[-1], None)
    assert report.cutoff == clock.now() - timedelta(days=30)
    rows = await audit_rows(services)
    assert [r.id for r in rows][:4] == young
    [purged] = [r for r in rows if r.event == "audit_purged"]
    assert json.loads(purged.detail) == {"rows": 7, "cutoff": report.cutoff.isoformat(),
                                         "anchor_id": old[-1]}
    verified = await services.audit_log.verify_chain()
    assert (verified.ok, verified.rows, verified.anchor_id) == (True, 5, old[-1])

    # Editing a remaining row is still caught after the purge.
    await change(services, update(AuditEvent).where(AuditEvent.id == young[1])
                 .values(detail="{}"))
    assert (await services.audit_log.verify_chain()).first_bad == young[1]


async def test_purging_in_small_batches_and_everything(kept_30_days: Services,
                                                       clock: ManualClock) -> None:
    services = kept_30_days
    ids = await record(services, 23)
    clock.advance(31 * DAY)
    key = derive_key(services.settings.secret_key.get_secret_value())
    cutoff = clock.now()  # everything, the head row included
    report = await purge(services.db, key, cutoff, clock.now(), batch=5)
    assert (report.rows, report.anchor_id) == (23, ids[-1])
    assert await audit_rows(services) == []
    verified = await services.audit_log.verify_chain()
    assert (verified.ok, verified.rows) == (True, 0)
    await record(services, 2)  # the chain goes on from the anchor
    verified = await services.audit_log.verify_chain()
    assert (verified.ok, verified.rows) == (True, 2)


async def test_a_tampered_old_row_is_kept_not_purged(kept_30_days: Services,
                                                     clock: ManualClock) -> None:
    services = kept_30_days
    ids = await record(services, 6)
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[3])
                 .values(detail='{"hidden": true}'))
    clock.advance(31 * DAY)
    report = await services.audit_log.purge()
    assert report is not None and (report.rows, report.broken_at) == (3, ids[3])
    remaining = [r.id for r in await audit_rows(services)]
    assert ids[3] in remaining and ids[2] not in remaining  # the evidence stays
    assert [r.event for r in await audit_rows(services)][-2:] == ["audit_purged",
                                                                   "audit_chain_broken"]
    assert (await services.audit_log.verify_chain()).first_bad == ids[3]


async def test_rows_before_the_chain_are_purged_too(kept_30_days: Services,
                                                    clock: ManualClock) -> None:
    services = kept_30_days
    async with services.db.unit() as db:
        for number in range(3):
            db.add(AuditEvent(at=clock.now(), event="logout", user_id=number, client_ip="",
                              user_agent="", request_id="", detail="{}", chain=None))
    await record(services, 2)
    clock.advance(31 * DAY)
    report = await services.audit_log.purge()
    assert report is not None and report.rows == 5
    verified = await services.audit_log.verify_chain()
    assert (verified.ok, verified.rows, verified.not_covered) == (True, 1, 0)


async def test_retention_off_keeps_everything(services: Services, clock: ManualClock) -> None:
    await record(services, 3)
    clock.advance(3650 * DAY)
    assert await services.audit_log.purge() is None
    assert len(await audit_rows(services)) == 3
