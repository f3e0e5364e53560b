"""The bare baseline: python-socketio broadcast only, nothing checked, stored or audited.

Same wire protocol as Streamzy's chat edge, so the same load generator drives both:
``join {room}`` enters a room, ``message {room, client_msg_id, text}`` broadcasts a payload
of Streamzy's shape to the room (sender included) and acks ``{ok, id, seq}``.

    python -m hypercorn -c hypercorn.toml --bind 127.0.0.1:PORT benchmarks.baseline_server:app
    python -m uvicorn --host 127.0.0.1 --port PORT benchmarks.baseline_server:app
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from typing import Any

import socketio

# Scenario 6 runs two baseline processes over Redis, like Streamzy's STREAMZY_REDIS_URL.
_redis = os.environ.get("BASELINE_REDIS_URL", "")
sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket", "polling"],
                           client_manager=(socketio.AsyncRedisManager(_redis, channel="baseline")
                                           if _redis else None),
                           logger=False, engineio_logger=False,
                           max_http_buffer_size=32 * 1024)
app = socketio.ASGIApp(sio, socketio_path="socket.io")

_ids = itertools.count(1)
_seqs: dict[Any, itertools.count[int]] = {}
_names: dict[str, dict[str, Any]] = {}


@sio.on("connect")
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    n = len(_names) + 1
    _names[sid] = {"id": n, "username": f"user{n}", "display_name": f"User {n}", "bot": False}


@sio.on("disconnect")
async def disconnect(sid: str, *args: Any) -> None:
    _names.pop(sid, None)


@sio.on("join")
async def join(sid: str, data: Any) -> dict[str, Any]:
    room = data.get("room") if isinstance(data, dict) else None
    if room is None:
        return {"ok": False, "code": "invalid_input"}
    await sio.enter_room(sid, f"r:{room}")
    return {"ok": True, "room": {"id": room}, "messages": [], "has_more": False}


@sio.on("message")
async def message(sid: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        return {"ok": False, "code": "invalid_payload"}
    room = data.get("room")
    seq = next(_seqs.setdefault(room, itertools.count(1)))
    msg_id = next(_ids)
    payload = {
        "id": msg_id, "room": room, "seq": seq, "sender": _names.get(sid),
        "client_msg_id": data.get("client_msg_id"), "text": data.get("text"),
        "unreadable": False, "created_at": datetime.now(UTC).isoformat(),
    }
    await sio.emit("message", payload, room=f"r:{room}")
    return {"ok": True, "id": msg_id, "seq": seq, "room": room, "duplicate": False}
