"""The moderation events, once the namespace's guards have passed them (its ``table()`` is
merged into the chat event table in ``assembly.py``).

Each handler validates its payload, resolves the room and calls one use case; refusals are
service errors, which the namespace turns into ``{ok: false, code, message}``.
"""

from __future__ import annotations

from typing import Any

from streamzy.guards.validation import parse
from streamzy.realtime.handlers import Handler
from streamzy.realtime.moderation_schemas import (
    AboutRoom,
    Archive,
    Ban,
    Invite,
    Kick,
    Mute,
    OnMember,
    ReportMessage,
    SetRole,
    SlowMode,
)
from streamzy.realtime.principal import Principal
from streamzy.realtime.room_cache import RoomCache
from streamzy.services.errors import Forbidden
from streamzy.services.moderation import Moderation
from streamzy.services.reports import Reports
from streamzy.services.room_roles import RoomRoles


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class ModerationHandlers:
    def __init__(self, *, room_cache: RoomCache, room_roles: RoomRoles,
                 moderation: Moderation, reports: Reports) -> None:
        self._room_cache = room_cache
        self._roles = room_roles
        self._moderation = moderation
        self._reports = reports

    def table(self) -> dict[str, Handler]:
        """Event name -> handler for the moderation events."""
        return {"report": self.on_report, "permissions": self.on_permissions,
                "mute": self.on_mute, "unmute": self.on_unmute, "kick": self.on_kick,
                "ban": self.on_ban, "unban": self.on_unban, "slow_mode": self.on_slow_mode,
                "set_role": self.on_set_role, "invite": self.on_invite,
                "archive": self.on_archive}

    async def _room_id(self, ref: int | str) -> int:
        return (await self._room_cache.get(ref)).id

    async def on_report(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(ReportMessage, data)
        room_id = await self._room_id(event.room)
        receipt = await self._reports.report(principal.user_id, room_id, event.id,
                                             event.reason, principal.info)
        return {"ok": True, "report": receipt.id, "duplicate": receipt.duplicate}

    async def on_permissions(self, sid: str, principal: Principal,
                             data: Any) -> dict[str, Any]:
        """What this person may do in the room now (a client shows or hides controls)."""
        event = parse(AboutRoom, data)
        standing = await self._roles.standing(principal.user_id, await self._room_id(event.room))
        if not standing.member and not standing.can_moderate:
            raise Forbidden("not_a_member", "You are not a member of this room.")
        room = standing.room
        return {"ok": True, "room": room.id, "role": standing.role,
                "can_moderate": standing.can_moderate, "can_manage": standing.can_manage,
                "muted_until": _time(standing.muted_until), "archived": room.archived,
                "slow_mode_seconds": room.slow_mode_seconds}

    async def on_mute(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(Mute, data)
        until = await self._moderation.mute(principal.user_id, await self._room_id(event.room),
                                            event.user, event.minutes, event.reason,
                                            principal.info)
        return {"ok": True, "until": _time(until)}

    async def on_unmute(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(OnMember, data)
        await self._moderation.unmute(principal.user_id, await self._room_id(event.room),
                                      event.user, principal.info)
        return {"ok": True}

    async def on_kick(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(Kick, data)
        await self._moderation.kick(principal.user_id, await self._room_id(event.room),
                                    event.user, event.reason, principal.info)
        return {"ok": True}

    async def on_ban(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(Ban, data)
        until = await self._moderation.ban(principal.user_id, await self._room_id(event.room),
                                           event.user, event.minutes, event.reason,
                                           principal.info)
        return {"ok": True, "until": _time(until)}

    async def on_unban(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(OnMember, data)
        await self._moderation.unban(principal.user_id, await self._room_id(event.room),
                                     event.user, principal.info)
        return {"ok": True}

    async def on_slow_mode(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(SlowMode, data)
        await self._moderation.set_slow_mode(principal.user_id,
                                             await self._room_id(event.room), event.seconds,
                                             principal.info)
        return {"ok": True, "seconds": event.seconds}

    async def on_set_role(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(SetRole, data)
        await self._roles.set_role(principal.user_id, await self._room_id(event.room),
                                   event.user, event.role, principal.info)
        return {"ok": True, "role": event.role}

    async def on_invite(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(Invite, data)
        username = await self._roles.invite(principal.user_id, await self._room_id(event.room),
                                            event.username, principal.info)
        return {"ok": True, "username": username}

    async def on_archive(self, sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        event = parse(Archive, data)
        await self._roles.archive(principal.user_id, await self._room_id(event.room),
                                  event.archived, principal.info)
        return {"ok": True, "archived": event.archived}
