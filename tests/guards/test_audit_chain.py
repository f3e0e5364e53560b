"""The audit chain: every kind of tampering is caught and located; an untouched chain,
concurrent writers and a retention purge all still verify. Both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from streamzy.clock import ManualClock
from streamzy.config import Settings
from streamzy.guards.audit_chain import derive_key
from streamzy.guards.audit_verify import ChainReport, verify
from streamzy.storage.models import AuditEvent, SystemState
from streamzy.storage.system_state import AUDIT_ANCHOR, AUDIT_HEAD, AUDIT_VERIFIED
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, audit_rows

DAY = 86400


async def record(services: Services, count: int, event: str = "login_succeeded") -> list[int]:
    for number in range(count):
        await services.audit(event, CLIENT, number + 1, attempt=number)
    return [row.id for row in await audit_rows(services)]


async def change(services: Services, statement: Any) -> None:
    """Tamper with the database directly, as someone with write access to it would."""
    async with services.db.unit() as db:
        await db.execute(statement)


async def forge(services: Services, chain: str | None, **values: Any) -> int:
    row = AuditEvent(**{"at": services.clock.now(), "event": "login_succeeded", "user_id": 1,
                        "client_ip": CLIENT.ip, "user_agent": CLIENT.user_agent,
                        "request_id": "", "detail": "{}", "chain": chain, **values})
    async with services.db.unit() as db:
        db.add(row)
    return row.id


async def check(services: Services) -> ChainReport:
    return await services.audit_log.verify_chain()


def key_of(services: Services) -> bytes:
    return derive_key(services.settings.secret_key.get_secret_value())


async def test_an_untouched_chain_verifies_and_says_how_far(services: Services) -> None:
    ids = await record(services, 12)
    rows = await audit_rows(services)
    assert all(row.chain and len(row.chain) == 64 for row in rows)
    assert len({row.chain for row in rows}) == 12
    report = await check(services)
    assert (report.ok, report.rows, report.last_id, report.first_bad) == (True, 12, ids[-1], None)
    assert report.summary() == f"chain intact: 12 rows, up to id {ids[-1]}"
    # Pages smaller than the table walk it the same way (bounded memory).
    assert (await verify(services.db, key_of(services), page=5)).rows == 12


async def test_an_empty_trail_verifies(services: Services) -> None:
    report = await check(services)
    assert report.ok and report.rows == 0


async def test_an_edited_row_is_found_and_named(services: Services) -> None:
    ids = await record(services, 8)
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[3])
                 .values(detail='{"attempt": 99}'))
    report = await check(services)
    assert (report.ok, report.first_bad, report.kind, report.rows) == (False, ids[3], "edited", 3)
    assert report.summary().startswith(f"chain BROKEN at row {ids[3]}: edited")


@pytest.mark.parametrize("column", ["at", "event", "user_id", "client_ip", "user_agent",
                                    "request_id"])
async def test_every_covered_column_is_protected(services: Services, column: str) -> None:
    ids = await record(services, 4)
    [row] = [r for r in await audit_rows(services) if r.id == ids[1]]
    values: dict[str, Any] = {
        "at": services.clock.now().replace(year=2029), "event": "logout", "user_id": 999,
        "client_ip": "198.51.100.7", "user_agent": "other/1.0", "request_id": "other"}
    assert getattr(row, column) != values[column]
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[1])
                 .values({column: values[column]}))
    report = await check(services)
    assert (report.first_bad, report.kind) == (ids[1], "edited")


async def test_a_renumbered_row_is_caught(services: Services) -> None:
    ids = await record(services, 5)
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[2])
                 .values(id=ids[-1] + 100))
    report = await check(services)
    # Where it was, the next row lost its predecessor.
    assert (report.first_bad, report.kind) == (ids[3], "deleted")


@pytest.mark.parametrize("chain", [None, "ab" * 32, "copied"])
async def test_a_forged_row_between_real_ones_is_found(services: Services,
                                                       chain: str | None) -> None:
    ids = await record(services, 4)
    if chain == "copied":  # a real row's chain value does not make a forged row fit
        chain = (await audit_rows(services))[-1].chain
    forged = await forge(services, chain)
    later = await record(services, 3)  # the server goes on writing after the forged row
    report = await check(services)
    assert (report.ok, report.first_bad, report.kind) == (False, forged, "inserted")
    assert report.rows == len(ids)
    assert later[-1] > forged


async def test_a_forged_row_at_the_end_is_found(services: Services) -> None:
    await record(services, 4)
    forged = await forge(services, "cd" * 32)
    report = await check(services)
    assert (report.first_bad, report.kind) == (forged, "inserted")


async def test_a_deleted_row_is_found_where_it_was(services: Services) -> None:
    ids = await record(services, 8)
    await change(services, delete(AuditEvent).where(AuditEvent.id == ids[4]))
    report = await check(services)
    assert (report.ok, report.first_bad, report.kind) == (False, ids[5], "deleted")
    assert report.rows == 4 and report.last_id == ids[3]


async def test_rows_deleted_from_the_end_are_found(services: Services) -> None:
    ids = await record(services, 8)
    await change(services, delete(AuditEvent).where(AuditEvent.id > ids[5]))
    report = await check(services)
    assert (report.ok, report.first_bad, report.kind) == (False, ids[-1], "truncated")
    assert report.rows == 6 and report.last_id == ids[5]


async def test_every_row_deleted_is_found(services: Services) -> None:
    ids = await record(services, 3)
    await change(services, delete(AuditEvent))
    report = await check(services)
    assert (report.first_bad, report.kind) == (ids[-1], "truncated")


async def _head(services: Services) -> dict[str, Any]:
    async with services.db.unit() as db:
        row = await db.get(SystemState, AUDIT_HEAD)
        assert row is not None
        return dict(json.loads(row.value))


async def _set_state(services: Services, name: str, value: str) -> None:
    await change(services, update(SystemState).where(SystemState.name == name)
                 .values(value=value))


@pytest.mark.parametrize("tamper", ["id", "chain", "mac", "garbage"])
async def test_an_edited_head_is_found(services: Services, tamper: str) -> None:
    ids = await record(services, 5)
    head = await _head(services)
    assert head["id"] == ids[-1]
    if tamper == "id":  # to hide the deletion of the last rows, say
        head["id"] = ids[2]
    elif tamper == "chain":
        head["chain"] = "0" * 64
    elif tamper == "mac":
        head["mac"] = "f" * 64
    value = "not json" if tamper == "garbage" else json.dumps(head)
    await _set_state(services, AUDIT_HEAD, value)
    report = await check(services)
    assert (report.ok, report.kind) == (False, "head")


async def test_an_old_head_put_back_is_the_limit_the_outside_copy_covers(
        services: Services) -> None:
    """The documented limit: someone who saved an old head, deleted the rows after it and
    put the old head back leaves a chain that holds. The JSON lines (a copy kept outside
    the database) still carry the chain values of the deleted rows."""
    await record(services, 3)
    async with services.db.unit() as db:
        old = (await db.get(SystemState, AUDIT_HEAD)).value  # type: ignore[union-attr]
    ids = await record(services, 3)
    removed = {row.chain for row in await audit_rows(services) if row.id > ids[2]}
    await change(services, delete(AuditEvent).where(AuditEvent.id > ids[2]))
    await _set_state(services, AUDIT_HEAD, old)  # a valid head, but from before
    assert (await check(services)).ok
    services.audit_log.close()
    lines = Path(services.settings.audit_log_path).read_text("utf-8").splitlines()
    assert removed <= {json.loads(line)["chain"] for line in lines}


async def test_a_deleted_head_is_found_even_after_it_was_rebuilt(services: Services) -> None:
    ids = await record(services, 4)
    await change(services, delete(SystemState).where(SystemState.name == AUDIT_HEAD))
    assert (await check(services)).kind == "head"
    later = await record(services, 2)  # writing goes on: the chain continues from the last row
    report = await check(services)
    assert (report.ok, report.kind) == (False, "head")
    rows = await audit_rows(services)
    assert report.rows == len(rows) - 1  # all but the record of the break just found
    assert later[-1] > ids[-1] and all(r.chain for r in rows)


async def test_a_forged_anchor_is_found(services: Services) -> None:
    ids = await record(services, 4)
    await change(services, delete(AuditEvent).where(AuditEvent.id <= ids[1]))
    async with services.db.unit() as db:
        db.add(SystemState(name=AUDIT_ANCHOR, updated_at=services.clock.now(),
                           value=json.dumps({"id": ids[1], "chain": "0" * 64,
                                             "restored": False, "mac": "0" * 64})))
    assert (await check(services)).kind == "anchor"


async def test_rows_deleted_from_the_start_are_found(services: Services) -> None:
    ids = await record(services, 4)
    await change(services, delete(AuditEvent).where(AuditEvent.id <= ids[1]))
    report = await check(services)
    assert (report.first_bad, report.kind) == (ids[2], "deleted")


async def test_a_different_key_cannot_extend_the_chain(
        services: Services, settings_factory: Callable[..., Settings]) -> None:
    """Someone who can write the database but lacks STREAMZY_SECRET_KEY may run our own
    code against it: the rows it writes do not verify under the real key."""
    ids = await record(services, 3)
    intruder = build_services(settings_factory(secret_key="another-secret-" + "z7" * 20),
                              services.clock)
    try:
        await intruder.audit("login_succeeded", CLIENT, 1)
    finally:
        await intruder.close()
    report = await check(services)
    assert (report.ok, report.rows) == (False, 3)
    assert report.first_bad is not None and report.first_bad > ids[-1]


async def test_a_break_is_recorded_audited_and_logged(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    ids = await record(services, 4)
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[1])
                 .values(event="logout"))
    report = await check(services)
    broken = await audit_rows(services, "audit_chain_broken")
    assert len(broken) == 1
    assert json.loads(broken[0].detail) == {"first_bad": ids[1], "kind": "edited", "rows": 1}
    assert any(f"BROKEN at row {ids[1]}" in r.getMessage() for r in caplog.records
               if r.name == "streamzy.chain")
    state = await services.audit_log.last_verification()
    assert state is not None and state.report == report and state.at == services.clock.now()
    async with services.db.unit() as db:
        kept = await db.get(SystemState, AUDIT_VERIFIED)
    assert kept is not None
    assert {"at", "ok", "rows", "first_bad", "kind"} <= set(json.loads(kept.value))


async def test_the_server_verifies_when_the_last_verification_is_old(
        tmp_path: Path, settings_factory: Callable[..., Settings], clock: ManualClock) -> None:
    built = build_services(settings_factory(audit_verify_seconds=DAY), clock)
    try:
        await record(built, 2)
        assert (await built.audit_log.verify_if_due()) is not None  # never verified yet
        assert (await built.audit_log.verify_if_due()) is None
        clock.advance(DAY - 1)
        assert (await built.audit_log.verify_if_due()) is None
        clock.advance(1)
        report = await built.audit_log.verify_if_due()
        assert report is not None and report.ok and report.rows == 2
    finally:
        await built.close()


async def test_the_json_line_carries_the_rows_chain_value(services: Services) -> None:
    await record(services, 3)
    services.audit_log.close()  # flushes the background writer
    lines = Path(services.settings.audit_log_path).read_text("utf-8").splitlines()
    chains = [json.loads(line)["chain"] for line in lines]
    assert chains == [row.chain for row in await audit_rows(services)]


async def test_concurrent_writers_of_two_processes_never_fork_the_chain(
        settings_factory: Callable[..., Settings], clock: ManualClock) -> None:
    first = build_services(settings_factory(), clock)
    second = build_services(settings_factory(), clock)
    try:
        async def burst(services: Services, name: str) -> None:
            # (fewer at once than a pool has connections: each waits for the head lock
            # while holding one, within the database timeout)
            # (an event no alert watches: 240 failed sign-ins would add alert rows)
            await asyncio.gather(*(services.audit("logout", CLIENT, None, who=name, n=i)
                                   for i in range(12)))

        for _round in range(5):
            await asyncio.gather(burst(first, "a"), burst(second, "b"), burst(first, "c"),
                                 burst(second, "d"))
        report = await first.audit_log.verify_chain()
        assert (report.ok, report.rows) == (True, 240), report
        heads = await _head(first)
        assert heads["id"] == report.last_id
    finally:
        await first.close()
        await second.close()


async def test_rows_from_before_the_chain_are_reported_as_not_covered(
        services: Services) -> None:
    for number in range(3):  # written by a version without the chain
        await forge(services, None, request_id=f"legacy-{number}")
    legacy = [row.id for row in await audit_rows(services)]
    ids = await record(services, 2)
    report = await check(services)
    assert (report.ok, report.rows, report.not_covered, report.anchor_id) == (
        True, 2, 3, legacy[-1])
    assert "3 older rows" in report.summary() and "not covered" in report.summary()
    await change(services, update(AuditEvent).where(AuditEvent.id == ids[len(legacy)])
                 .values(chain=None))  # a chained row cannot pass for a legacy one
    assert (await check(services)).kind == "edited"
