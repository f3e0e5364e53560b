"""Applications without a server: apply, approve (an account with a one-time password),
reject with a reason, and decisions that can be made only once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from streamzy.clock import ManualClock
from streamzy.services.errors import Conflict, Invalid, NotFound
from streamzy.storage.models import User
from streamzy.wiring import Services
from tests.conftest import CLIENT, audit_rows, make_user

REASON = "I run the night shift and need the team channel."


async def submit(services: Services, *args: Any) -> Any:
    """Apply and return the stored application (the reference is the applicant's)."""
    return (await services.applications.submit(*args)).application


async def users_named(services: Services, name: str) -> int:
    async with services.db.unit() as db:
        return int((await db.execute(select(func.count()).select_from(User)
                                     .where(User.username == name))).scalar_one())


async def test_apply_then_approve_creates_an_account_with_a_one_time_password(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    application = await submit(services, "Dana", "Dana Scully", "dana@example.org",
                                                      REASON, CLIENT)
    assert application.username == "dana" and application.status == "pending"
    assert application.client_ip == CLIENT.ip
    assert await services.accounts.by_username("dana") is None  # nothing until approved

    user, password = await services.applications.approve(application.id, admin.id, CLIENT)
    assert user.username == "dana" and user.display_name == "Dana Scully"
    assert user.must_change_password and not user.is_admin
    assert len(password) == 16 and password not in user.password_hash
    signed_in = await services.accounts.authenticate("dana", password, CLIENT)
    assert signed_in.reason == "ok" and signed_in.user is not None
    assert signed_in.user.must_change_password  # the edges send them to change it first
    decided = await services.applications.get(application.id)
    assert decided is not None and decided.status == "approved"
    assert decided.user_id == user.id and decided.decided_by == admin.id
    assert await services.applications.pending() == []
    approved = await audit_rows(services, "application_approved")
    assert len(approved) == 1 and approved[0].user_id == admin.id
    assert password not in approved[0].detail


async def test_the_one_time_password_works_once_then_must_be_changed(
        services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    application = await submit(services, "dana", "Dana", "d@example.org", REASON,
                                                      CLIENT)
    user, password = await services.applications.approve(application.id, admin.id, CLIENT)
    await services.accounts.change_password(user.id, password, "my own sturdy passphrase 9",
                                            CLIENT, session_id=None, end_other_sessions=False)
    assert (await services.accounts.authenticate("dana", password, CLIENT)).reason \
        == "bad_credentials"
    changed = await services.accounts.authenticate("dana", "my own sturdy passphrase 9", CLIENT)
    assert changed.user is not None and not changed.user.must_change_password


async def test_reject_needs_and_records_a_reason(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    application = await submit(services, "spammer", "Legit", "s@example.org",
                                                      REASON, CLIENT)
    with pytest.raises(Invalid) as blank:
        await services.applications.reject(application.id, admin.id, "   ", CLIENT)
    assert blank.value.code == "reason_required"
    assert (await services.applications.get(application.id)).status == "pending"  # type: ignore[union-attr]

    await services.applications.reject(application.id, admin.id, "Not on the team.", CLIENT)
    rejected = await services.applications.get(application.id)
    assert rejected is not None and rejected.status == "rejected"
    assert rejected.reject_reason == "Not on the team." and rejected.decided_by == admin.id
    assert await services.accounts.by_username("spammer") is None
    rows = await audit_rows(services, "application_rejected")
    assert len(rows) == 1 and json.loads(rows[0].detail)["reason"] == "Not on the team."


async def test_a_decision_is_made_once(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    first = await submit(services, "dana", "Dana", "d@example.org", REASON, CLIENT)
    await services.applications.approve(first.id, admin.id, CLIENT)
    with pytest.raises(Conflict) as again:
        await services.applications.approve(first.id, admin.id, CLIENT)
    assert again.value.code == "already_decided"
    with pytest.raises(Conflict):
        await services.applications.reject(first.id, admin.id, "Changed my mind.", CLIENT)
    assert await users_named(services, "dana") == 1

    second = await submit(services, "eve", "Eve", "e@example.org", REASON, CLIENT)
    await services.applications.reject(second.id, admin.id, "No.", CLIENT)
    with pytest.raises(Conflict):
        await services.applications.approve(second.id, admin.id, CLIENT)
    assert await services.accounts.by_username("eve") is None
    with pytest.raises(NotFound):
        await services.applications.approve(999_999, admin.id, CLIENT)


async def test_concurrent_approvals_create_exactly_one_account(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    application = await submit(services, "dana", "Dana", "d@example.org", REASON,
                                                      CLIENT)
    results = await asyncio.gather(
        *(services.applications.approve(application.id, admin.id, CLIENT) for _ in range(3)),
        return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert await users_named(services, "dana") == 1


async def test_taken_and_requested_names_are_stored_alike_and_shown_to_the_admin(
        services: Services) -> None:
    await make_user(services, "alice")
    taken = await submit(services, "ALICE", "Alice 2", "a2@example.org", REASON, CLIENT)
    first = await submit(services, "dana", "Dana", "d@example.org", REASON, CLIENT)
    again = await submit(services, "Dana", "Dana again", "d2@example.org", REASON, CLIENT)
    assert taken.status == first.status == again.status == "pending"  # the same answer
    with pytest.raises(Invalid):
        await submit(services, "\u0430lice", "Cyrillic a", "c@example.org", REASON, CLIENT)
    queue = {entry.application.id: entry for entry in await services.applications.queue()}
    assert queue[taken.id].name_taken and not queue[first.id].name_taken
    assert first.id in queue[again.id].same_name_as
    assert await services.applications.pending_count() == 3


async def test_a_rejected_name_may_apply_again(services: Services) -> None:
    admin = await make_user(services, "boss", admin=True)
    first = await submit(services, "dana", "Dana", "d@example.org", REASON, CLIENT)
    await services.applications.reject(first.id, admin.id, "Incomplete.", CLIENT)
    second = await submit(services, "dana", "Dana", "d@example.org", REASON, CLIENT)
    assert second.id != first.id and second.status == "pending"


async def test_the_queue_is_oldest_first(services: Services, clock: ManualClock) -> None:
    for name in ("carol", "alice", "bob"):
        await submit(services, name, name.title(), f"{name}@example.org", REASON,
                                           CLIENT)
        clock.advance(60)
    assert [a.username for a in await services.applications.pending()] == ["carol", "alice",
                                                                          "bob"]
    assert await services.applications.pending_count() == 3
