"""Room roles and moderation without a server: who may do what, mutes and bans that end
with the clock, slow mode, archiving, leaving, and the audit row of every action."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from streamzy.clock import ManualClock
from streamzy.services.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from streamzy.services.events import MemberRemoved, RoomStateChanged, StandingChanged
from streamzy.services.message_state import Person
from streamzy.services.message_writer import Sender
from streamzy.services.rooms import RoomInfo
from streamzy.storage.models import Membership, Room, RoomBan, User
from streamzy.wiring import Services, build_services
from tests.conftest import CLIENT, audit_rows, make_settings, make_user


@dataclass
class Cast:
    """A room with one of each: its owner, a moderator, two members, an admin outside it
    and a stranger."""

    room: RoomInfo
    owner: User
    mod: User
    alice: User
    bob: User
    admin: User
    stranger: User


async def cast(services: Services, *, private: bool = False) -> Cast:
    owner = await make_user(services, "olivia")
    mod, alice, bob = [await make_user(services, n) for n in ("mona", "alice", "bob")]
    admin = await make_user(services, "root", admin=True)
    stranger = await make_user(services, "sam")
    room = await services.rooms.create(owner.id, "general", "", private, CLIENT)
    for user in (mod, alice, bob):
        await services.rooms.invite(owner.id, room.id, user.username, CLIENT)
    await services.room_roles.set_role(owner.id, room.id, mod.id, "moderator", CLIENT)
    return Cast(room, owner, mod, alice, bob, admin, stranger)


def detail(row: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(row.detail)
    return found


def sender(user: User) -> Sender:
    return Sender(user.id, user.username, user.display_name)


@pytest.fixture
def published(services: Services) -> list[Any]:
    seen: list[Any] = []

    async def record(event: Any) -> None:
        seen.append(event)

    for kind in (MemberRemoved, StandingChanged, RoomStateChanged):
        services.events.subscribe(kind, record)
    return seen


async def role_of(services: Services, room_id: int, user_id: int) -> str | None:
    async with services.db.unit() as db:
        row = await db.get(Membership, (room_id, user_id))
        return row.role if row else None


async def make_dm(services: Services, a: User, b: User) -> int:
    """A direct conversation between two people, opened the way the `dm` event does."""
    opened = await services.direct.open(Person(a.id, a.username, a.display_name),
                                        [b.username], CLIENT)
    return opened.room.id


# -- who may do what -------------------------------------------------------------------------
Action = Callable[[Services, Cast, User, User], Awaitable[Any]]
ACTIONS: dict[str, Action] = {
    "mute": lambda s, c, actor, target: s.moderation.mute(actor.id, c.room.id, target.id, 10,
                                                          "", CLIENT),
    "unmute": lambda s, c, actor, target: s.moderation.unmute(actor.id, c.room.id, target.id,
                                                              CLIENT),
    "kick": lambda s, c, actor, target: s.moderation.kick(actor.id, c.room.id, target.id, "",
                                                          CLIENT),
    "ban": lambda s, c, actor, target: s.moderation.ban(actor.id, c.room.id, target.id, None,
                                                        "", CLIENT),
    "set_role": lambda s, c, actor, target: s.room_roles.set_role(actor.id, c.room.id,
                                                                  target.id, "moderator",
                                                                  CLIENT),
}
ROOM_ACTIONS: dict[str, Callable[[Services, Cast, User], Awaitable[Any]]] = {
    "slow_mode": lambda s, c, actor: s.moderation.set_slow_mode(actor.id, c.room.id, 30, CLIENT),
    "archive": lambda s, c, actor: s.room_roles.archive(actor.id, c.room.id, True, CLIENT),
    "invite": lambda s, c, actor: s.room_roles.invite(actor.id, c.room.id, "sam", CLIENT),
    "unban": lambda s, c, actor: s.moderation.unban(actor.id, c.room.id, c.bob.id, CLIENT),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
async def test_a_plain_member_may_not_act_on_anyone(services: Services, action: str) -> None:
    c = await cast(services)
    with pytest.raises(Forbidden) as refused:
        await ACTIONS[action](services, c, c.alice, c.bob)
    assert refused.value.code == "not_allowed"
    [row] = await audit_rows(services, "room_action_denied")
    assert row.user_id == c.alice.id
    assert detail(row).items() >= {"action": action, "code": "not_allowed",
                                   "room_id": c.room.id, "target_user_id": c.bob.id}.items()
    assert await role_of(services, c.room.id, c.bob.id) == "member"  # nothing changed


@pytest.mark.parametrize("action", sorted(ROOM_ACTIONS))
async def test_a_plain_member_may_not_change_the_room(services: Services, action: str) -> None:
    c = await cast(services)
    with pytest.raises(Forbidden) as refused:
        await ROOM_ACTIONS[action](services, c, c.alice)
    assert refused.value.code == "not_allowed"
    assert len(await audit_rows(services, "room_action_denied")) == 1


@pytest.mark.parametrize("action", ["mute", "kick", "ban", "set_role"])
async def test_a_moderator_may_not_act_on_the_owner(services: Services, action: str) -> None:
    c = await cast(services)
    with pytest.raises(Forbidden) as refused:
        await ACTIONS[action](services, c, c.mod, c.owner)
    assert refused.value.code in ("outranked", "not_allowed")
    assert await role_of(services, c.room.id, c.owner.id) == "owner"


async def test_moderators_moderate_members_but_only_owners_name_roles_and_archive(
        services: Services) -> None:
    c = await cast(services)
    other_mod = await make_user(services, "mike")
    await services.room_roles.invite(c.mod.id, c.room.id, "mike", CLIENT)  # mods invite
    await services.room_roles.set_role(c.owner.id, c.room.id, other_mod.id, "moderator", CLIENT)
    with pytest.raises(Forbidden) as same_rank:
        await services.moderation.kick(c.mod.id, c.room.id, other_mod.id, "", CLIENT)
    assert same_rank.value.code == "outranked"
    await services.moderation.mute(c.mod.id, c.room.id, c.alice.id, 5, "", CLIENT)
    await services.moderation.set_slow_mode(c.mod.id, c.room.id, 10, CLIENT)
    for manage in (ROOM_ACTIONS["archive"](services, c, c.mod),
                   ACTIONS["set_role"](services, c, c.mod, c.bob)):
        with pytest.raises(Forbidden) as refused:
            await manage
        assert refused.value.code == "not_allowed"
    with pytest.raises(Invalid) as self_harm:
        await services.moderation.kick(c.owner.id, c.room.id, c.owner.id, "", CLIENT)
    assert self_harm.value.code == "not_yourself"


async def test_strangers_and_unknown_targets_are_refused(services: Services) -> None:
    c = await cast(services)
    with pytest.raises(Forbidden) as outsider:
        await services.moderation.kick(c.stranger.id, c.room.id, c.alice.id, "", CLIENT)
    assert outsider.value.code == "not_a_member"
    with pytest.raises(NotFound) as nobody:
        await services.moderation.kick(c.owner.id, c.room.id, 999_999, "", CLIENT)
    assert nobody.value.code == "no_user"
    with pytest.raises(NotFound) as not_here:
        await services.moderation.mute(c.owner.id, c.room.id, c.stranger.id, 5, "", CLIENT)
    assert not_here.value.code == "target_not_member"
    with pytest.raises(NotFound):
        await services.moderation.kick(c.owner.id, 999_999, c.alice.id, "", CLIENT)
    with pytest.raises(Invalid):
        await services.moderation.mute(c.owner.id, c.room.id, c.alice.id, 0, "", CLIENT)


async def test_admins_moderate_rooms_but_never_direct_conversations(
        services: Services) -> None:
    c = await cast(services)
    assert await services.room_rules.can_moderate(c.admin.id, c.room)
    await services.moderation.kick(c.admin.id, c.room.id, c.owner.id, "spam", CLIENT)
    assert await role_of(services, c.room.id, c.owner.id) is None
    dm = await make_dm(services, c.alice, c.bob)
    dm_room = await services.rooms.resolve(dm)
    assert not await services.room_rules.can_moderate(c.admin.id, dm_room)
    assert not await services.room_rules.can_moderate(c.alice.id, dm_room)
    for attempt in (services.moderation.kick(c.admin.id, dm, c.alice.id, "", CLIENT),
                    services.moderation.mute(c.admin.id, dm, c.alice.id, 5, "", CLIENT),
                    services.moderation.ban(c.admin.id, dm, c.alice.id, None, "", CLIENT),
                    services.moderation.set_slow_mode(c.admin.id, dm, 5, CLIENT),
                    services.room_roles.archive(c.admin.id, dm, True, CLIENT),
                    services.room_roles.invite(c.admin.id, dm, "sam", CLIENT),
                    services.moderation.kick(c.alice.id, dm, c.bob.id, "", CLIENT)):
        with pytest.raises(Forbidden) as refused:
            await attempt
        assert refused.value.code == "direct_conversation"
    assert await role_of(services, dm, c.alice.id) == "member"
    assert await role_of(services, dm, c.bob.id) == "member"
    assert await role_of(services, dm, c.stranger.id) is None


async def test_can_moderate(services: Services) -> None:
    c = await cast(services)
    assert await services.room_rules.can_moderate(c.owner.id, c.room)
    assert await services.room_rules.can_moderate(c.mod.id, c.room)
    assert not await services.room_rules.can_moderate(c.alice.id, c.room)
    assert not await services.room_rules.can_moderate(c.stranger.id, c.room)
    assert not await services.room_rules.can_moderate(999_999, c.room)


# -- mutes -------------------------------------------------------------------------------------
async def test_a_mute_stops_posting_and_changes_until_the_clock_passes_it(
        services: Services, clock: ManualClock, published: list[Any]) -> None:
    c = await cast(services)
    await services.posting.send(sender(c.alice), c.room, "m-0", "before", CLIENT)  # cached
    until = await services.moderation.mute(c.mod.id, c.room.id, c.alice.id, 10, "too loud",
                                           CLIENT)
    assert until == clock.now() + timedelta(minutes=10)
    for check in (services.posting.send(sender(c.alice), c.room, "m-1", "hi", CLIENT),
                  services.room_rules.can_write(c.alice.id, c.room, CLIENT)):
        with pytest.raises(Forbidden) as muted:
            await check
        assert muted.value.code == "muted"
    assert await services.posting.send(sender(c.bob), c.room, "b-1", "hi", CLIENT)
    clock.advance(9 * 60 + 59)
    with pytest.raises(Forbidden):
        await services.posting.send(sender(c.alice), c.room, "m-2", "hi", CLIENT)
    clock.advance(1)
    assert (await services.posting.send(sender(c.alice), c.room, "m-3", "back", CLIENT)).seq
    assert published[-1] == StandingChanged(c.room.id, c.alice.id, "member", until)
    [row] = await audit_rows(services, "room_muted")
    assert row.user_id == c.mod.id
    assert detail(row).items() >= {"room_id": c.room.id, "target_user_id": c.alice.id,
                                   "minutes": 10, "reason": "too loud"}.items()


async def test_unmute_lifts_a_mute_at_once(services: Services) -> None:
    c = await cast(services)
    await services.moderation.mute(c.owner.id, c.room.id, c.alice.id, 60, "", CLIENT)
    await services.moderation.unmute(c.owner.id, c.room.id, c.alice.id, CLIENT)
    await services.room_rules.check_can_post(c.alice.id, c.room)
    assert len(await audit_rows(services, "room_unmuted")) == 1


# -- kicks and bans ----------------------------------------------------------------------------
async def test_a_kick_ends_the_membership_but_a_public_room_can_be_joined_again(
        services: Services, published: list[Any]) -> None:
    c = await cast(services)
    await services.moderation.kick(c.mod.id, c.room.id, c.alice.id, "off topic", CLIENT)
    assert not await services.rooms.is_member(c.alice.id, c.room.id)
    assert published[-1] == MemberRemoved(c.room.id, c.alice.id, "kicked")
    with pytest.raises(Forbidden) as gone:
        await services.posting.send(sender(c.alice), c.room, "k-1", "hi", CLIENT)
    assert gone.value.code == "not_a_member"
    [row] = await audit_rows(services, "room_kicked")
    assert json.loads(row.detail)["reason"] == "off topic"
    await services.rooms.join(c.alice.id, c.room)  # a kick is not a ban
    assert await services.rooms.is_member(c.alice.id, c.room.id)


async def test_a_timed_ban_keeps_out_until_it_ends(services: Services, clock: ManualClock,
                                                   published: list[Any]) -> None:
    c = await cast(services)
    until = await services.moderation.ban(c.mod.id, c.room.id, c.alice.id, 60, "spam", CLIENT)
    assert until is not None
    assert published[-1] == MemberRemoved(c.room.id, c.alice.id, "banned")
    assert not await services.rooms.is_member(c.alice.id, c.room.id)
    with pytest.raises(Forbidden) as joining:
        await services.rooms.join(c.alice.id, c.room)
    assert joining.value.code == "banned"
    with pytest.raises(Conflict) as inviting:
        await services.room_roles.invite(c.owner.id, c.room.id, "alice", CLIENT)
    assert inviting.value.code == "banned"
    assert [b.username for b in await services.moderation.bans(c.room.id)] == ["alice"]
    clock.advance(3600)
    assert await services.moderation.bans(c.room.id) == []
    await services.rooms.join(c.alice.id, c.room)
    assert await services.rooms.is_member(c.alice.id, c.room.id)
    [row] = await audit_rows(services, "room_banned")
    assert detail(row).items() >= {"minutes": 60, "reason": "spam",
                                   "target_user_id": c.alice.id}.items()


async def test_a_permanent_ban_lasts_until_lifted_and_works_on_non_members(
        services: Services, clock: ManualClock) -> None:
    c = await cast(services)
    banned = await services.moderation.ban_by_name(c.owner.id, c.room.id, "SAM", None, "",
                                                   CLIENT)
    assert banned == c.stranger.id
    clock.advance(10 * 365 * 86400)
    with pytest.raises(Forbidden):
        await services.rooms.join(c.stranger.id, c.room)
    await services.moderation.unban(c.mod.id, c.room.id, c.stranger.id, CLIENT)
    await services.rooms.join(c.stranger.id, c.room)
    assert len(await audit_rows(services, "room_unbanned")) == 1
    with pytest.raises(NotFound):
        await services.moderation.unban(c.mod.id, c.room.id, c.stranger.id, CLIENT)
    # Who exists is only said to people who may ban.
    with pytest.raises(Forbidden):
        await services.moderation.ban_by_name(c.alice.id, c.room.id, "nobody-here", None, "",
                                              CLIENT)


async def test_banning_again_updates_the_ban(services: Services, clock: ManualClock) -> None:
    c = await cast(services)
    await services.moderation.ban(c.owner.id, c.room.id, c.alice.id, 10, "", CLIENT)
    await services.moderation.ban(c.owner.id, c.room.id, c.alice.id, None, "", CLIENT)
    async with services.db.unit() as db:
        bans = list((await db.execute(select(RoomBan))).scalars())
    assert [(b.user_id, b.until) for b in bans] == [(c.alice.id, None)]


# -- slow mode and archive ---------------------------------------------------------------------
async def test_slow_mode_spaces_a_members_messages_and_exempts_moderators(
        services: Services, clock: ManualClock, published: list[Any]) -> None:
    c = await cast(services)
    await services.posting.send(sender(c.alice), c.room, "s-0", "warm", CLIENT)  # cached
    clock.advance(60)
    await services.moderation.set_slow_mode(c.mod.id, c.room.id, 30, CLIENT)
    assert published[-1] == RoomStateChanged(c.room.id, False, 30)
    await services.posting.send(sender(c.alice), c.room, "s-1", "first", CLIENT)
    with pytest.raises(RateLimited) as slow:
        await services.posting.send(sender(c.alice), c.room, "s-2", "second", CLIENT)
    assert slow.value.code == "slow_mode" and 29 <= slow.value.retry_after <= 30
    await services.posting.send(sender(c.bob), c.room, "b-1", "someone else", CLIENT)
    for n in range(3):  # moderators and owners are exempt
        await services.posting.send(sender(c.mod), c.room, f"mod-{n}", "noted", CLIENT)
        await services.posting.send(sender(c.owner), c.room, f"own-{n}", "noted", CLIENT)
    clock.advance(30)
    await services.posting.send(sender(c.alice), c.room, "s-3", "third", CLIENT)
    await services.moderation.set_slow_mode(c.mod.id, c.room.id, 0, CLIENT)
    await services.posting.send(sender(c.alice), c.room, "s-4", "no wait", CLIENT)
    rows = await audit_rows(services, "room_slow_mode")
    assert [json.loads(r.detail)["seconds"] for r in rows] == [30, 0]
    refused = [json.loads(r.detail) for r in await audit_rows(services, "rate_limited")]
    assert refused and refused[0]["limit"] == "slow_mode"
    with pytest.raises(Invalid):
        await services.moderation.set_slow_mode(c.mod.id, c.room.id, 10**6, CLIENT)


async def test_an_archived_room_is_read_only_until_unarchived(
        services: Services, published: list[Any]) -> None:
    c = await cast(services)
    await services.posting.send(sender(c.alice), c.room, "a-1", "before", CLIENT)
    await services.room_roles.archive(c.owner.id, c.room.id, True, CLIENT)
    assert published[-1] == RoomStateChanged(c.room.id, True, 0)
    for who in (c.alice, c.owner):
        with pytest.raises(Forbidden) as archived:
            await services.posting.send(sender(who), c.room, f"a-{who.id}", "after", CLIENT)
        assert archived.value.code == "archived"
    with pytest.raises(Forbidden):
        await services.room_rules.can_write(c.alice.id, c.room, CLIENT)
    page, _ = await services.history.page(c.room.id, None, 10, CLIENT)
    assert [m.text for m in page] == ["before"]  # still readable
    await services.room_roles.archive(c.admin.id, c.room.id, False, CLIENT)  # admins too
    await services.posting.send(sender(c.alice), c.room, "a-2", "open again", CLIENT)
    assert [r.user_id for r in await audit_rows(services, "room_archived")] == [c.owner.id]
    assert [r.user_id for r in await audit_rows(services, "room_unarchived")] == [c.admin.id]


# -- roles, leaving, creating ------------------------------------------------------------------
async def test_owners_name_moderators_and_owners_and_hand_over_before_leaving(
        services: Services, published: list[Any]) -> None:
    c = await cast(services)
    assert await role_of(services, c.room.id, c.owner.id) == "owner"  # the creator
    with pytest.raises(Conflict) as last:
        await services.room_roles.leave(c.owner.id, c.room.id, CLIENT)
    assert last.value.code == "last_owner"
    await services.room_roles.set_role(c.owner.id, c.room.id, c.alice.id, "owner", CLIENT)
    assert published[-1] == StandingChanged(c.room.id, c.alice.id, "owner", None)
    with pytest.raises(Forbidden):  # owners cannot act on each other
        await services.room_roles.set_role(c.owner.id, c.room.id, c.alice.id, "member", CLIENT)
    await services.room_roles.leave(c.owner.id, c.room.id, CLIENT)
    assert published[-1] == MemberRemoved(c.room.id, c.owner.id, "left")
    assert await role_of(services, c.room.id, c.owner.id) is None
    await services.room_roles.set_role(c.alice.id, c.room.id, c.mod.id, "member", CLIENT)
    assert await role_of(services, c.room.id, c.mod.id) == "member"
    rows = [json.loads(r.detail) for r in await audit_rows(services, "room_role_changed")]
    assert [(r["role"], r["previous"]) for r in rows] == [
        ("moderator", "member"), ("owner", "member"), ("member", "moderator")]
    with pytest.raises(Invalid):
        await services.room_roles.set_role(c.alice.id, c.room.id, c.bob.id, "king", CLIENT)


async def test_the_last_member_may_leave_even_as_owner(services: Services) -> None:
    owner = await make_user(services, "olivia")
    room = await services.rooms.create(owner.id, "solo", "", False, CLIENT)
    await services.room_roles.leave(owner.id, room.id, CLIENT)
    assert not await services.rooms.is_member(owner.id, room.id)


@pytest.fixture
async def open_creation(tmp_path: Path, database_url: str,
                        clock: ManualClock) -> AsyncIterator[Services]:
    built = build_services(make_settings(tmp_path, database_url, room_creation="everyone"),
                           clock)
    try:
        yield built
    finally:
        await built.close()


async def test_room_creation_follows_the_setting(services: Services,
                                                 open_creation: Services) -> None:
    alice = await make_user(services, "alice")
    admin = await make_user(services, "root", admin=True)
    with pytest.raises(Forbidden) as closed:
        await services.room_roles.create(alice.id, "mine", "", False, CLIENT)
    assert closed.value.code == "room_creation_closed"
    assert not await services.room_roles.may_create(alice.id)
    assert await services.room_roles.may_create(admin.id)
    room = await open_creation.room_roles.create(alice.id, "mine", "", True, CLIENT)
    assert await role_of(open_creation, room.id, alice.id) == "owner"
    await open_creation.room_roles.invite(alice.id, room.id, "root", CLIENT)
    assert await role_of(open_creation, room.id, admin.id) == "member"
    assert [r.event for r in await audit_rows(services, "room_action_denied")] == [
        "room_action_denied"]


async def test_only_admins_add_bots_to_rooms(services: Services) -> None:
    c = await cast(services)
    await services.bots.create(c.admin.id, "helper-bot", "Helper", [], CLIENT)
    with pytest.raises(Forbidden) as refused:
        await services.room_roles.invite(c.owner.id, c.room.id, "helper-bot", CLIENT)
    assert refused.value.code == "bots_by_admins"
    assert await services.room_roles.invite(c.admin.id, c.room.id, "helper-bot", CLIENT) == \
        "helper-bot"


async def test_posting_reads_a_rooms_rules_once_per_expiry_and_at_each_change(
        services: Services, clock: ManualClock) -> None:
    c = await cast(services)
    reads = 0
    real_read = services.db.read

    async def counted(work: Any, *args: Any) -> Any:
        nonlocal reads
        reads += work.__name__ == "_rule_rows"
        return await real_read(work, *args)

    services.db.read = counted  # type: ignore[method-assign]
    for _ in range(5):
        await services.room_rules.check_can_post(c.alice.id, c.room)
        await services.room_rules.check_can_post(c.bob.id, c.room)
    assert reads == 1
    # Changed behind the services' back (another process without Redis): seen on expiry.
    async with services.db.unit() as db:
        await db.execute(update(Room).where(Room.id == c.room.id).values(
            archived_at=clock.now()))
    await services.room_rules.check_can_post(c.alice.id, c.room)
    clock.advance(5)
    with pytest.raises(Forbidden):
        await services.room_rules.check_can_post(c.alice.id, c.room)
    assert reads == 2
    services.room_rules.forget(c.room.id)  # what another process's change relays
    with pytest.raises(Forbidden):
        await services.room_rules.check_can_post(c.alice.id, c.room)
    assert reads == 3
