"""The JSON shapes both edges send: one wire format for Socket.IO and the JSON API.

Services hand the edges small dataclasses; how those look on the wire is decided here, so
a socket client and an API client see the same message, room and error objects.
"""

from __future__ import annotations

from typing import Any

from streamzy.clock import as_utc
from streamzy.services.message_changes import Changed
from streamzy.services.message_state import Person, ReplyPreview, StoredMessage
from streamzy.services.message_writer import SendResult
from streamzy.services.rooms import RoomInfo

UNREADABLE = "[unreadable message]"


def person(p: Person) -> dict[str, Any]:
    return {"id": p.id, "username": p.username, "display_name": p.display_name,
            "bot": p.is_bot}


def _reply(r: ReplyPreview | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"id": r.id, "seq": r.seq, "sender": None if r.sender is None else person(r.sender),
            "text": r.excerpt, "deleted": r.deleted}


def message(m: StoredMessage) -> dict[str, Any]:
    return {
        "id": m.id, "room": m.room_id, "seq": m.seq,
        "sender": {"id": m.sender_id, "username": m.username,
                   "display_name": m.display_name, "bot": m.is_bot},
        "client_msg_id": m.client_msg_id,
        "text": m.text if m.text is not None else UNREADABLE,
        "unreadable": m.text is None,
        "created_at": as_utc(m.created_at).isoformat(),
        "edited_at": None if m.edited_at is None else as_utc(m.edited_at).isoformat(),
        "deleted": m.deleted,
        "reply_to": _reply(m.reply),
        "reactions": [{"emoji": r.emoji, "count": r.count, "users": list(r.users)}
                      for r in m.reactions],
        "mentions": list(m.mentions),
        "mentions_room": m.mentions_room,
        "change_seq": m.change_seq,
        "attachments": [a.public() for a in m.attachments],
    }


def messages(ms: list[StoredMessage]) -> list[dict[str, Any]]:
    return [message(m) for m in ms]


def ack(result: SendResult, room_id: int) -> dict[str, Any]:
    """The answer to a stored send (also to a retry of one: ``duplicate``)."""
    return {"ok": True, "id": result.id, "seq": result.seq, "room": room_id,
            "duplicate": result.duplicate}


def changed(result: Changed) -> dict[str, Any]:
    """The answer to an edit, delete or reaction (``added`` only for reactions)."""
    answer: dict[str, Any] = {"ok": True, "id": result.id, "change_seq": result.change_seq}
    if result.message is not None and result.message.edited_at is not None:
        answer["edited_at"] = as_utc(result.message.edited_at).isoformat()
    if result.added is not None:
        answer["added"] = result.added
    return answer


def room(r: RoomInfo) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "topic": r.topic, "private": r.is_private,
            "last_seq": r.last_seq, "kind": r.kind, "last_change": r.last_change,
            "archived": r.archived, "slow_mode_seconds": r.slow_mode_seconds}


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message, **extra}
