"""Experiment: room emits without one asyncio task per recipient.

python-socketio's AsyncManager.emit encodes a room message once, then creates one task per
recipient (``asyncio.create_task(server._send_eio_packet(...))``) and waits for them all.
Each of those sends only appends to the recipient's Engine.IO queue (an unbounded
asyncio.Queue, so ``put`` never suspends); the per-socket writer task does the real work.
This manager does the same sends inline, in a loop, and keeps everything else.

Not used by Streamzy: the benchmark measures it through ``--app streamzy-inline`` /
``baseline-inline`` (see benchmarks/README.md) so the lead can decide with figures.

    InlineEmitManager() can be passed as ``client_manager=`` to socketio.AsyncServer.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

log = logging.getLogger("benchmarks.inline_emit")


async def inline_emit(self: Any, event: str, data: Any, namespace: str, room: Any = None,
                      skip_sid: Any = None, callback: Any = None, to: Any = None,
                      **kwargs: Any) -> None:
    room = to or room
    if callback is not None or namespace not in self.rooms:
        await type(self).emit(self, event, data, namespace, room=room, skip_sid=skip_sid,
                              callback=callback, **kwargs)
        return
    if isinstance(data, tuple):
        data = list(data)
    elif data is not None:
        data = [data]
    else:
        data = []
    if not isinstance(skip_sid, list):
        skip_sid = [skip_sid]
    encoded = self.server.packet_class(packet.EVENT, namespace=namespace,
                                       data=[event, *data]).encode()
    if not isinstance(encoded, list):
        encoded = [encoded]
    eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
    eio = self.server.eio
    for sid, eio_sid in self.get_participants(namespace, room):
        if sid in skip_sid:
            continue
        socket = eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            continue
        for pkt in eio_pkts:
            try:
                await socket.send(pkt)  # check_ping_timeout + unbounded queue.put
            except Exception:  # a closing socket must not stop the others
                log.debug("send to %s failed", sid, exc_info=True)


def install(sio: socketio.AsyncServer) -> None:
    """Switch an in-process AsyncManager to inline sends (Redis managers are left alone)."""
    manager = sio.manager
    if type(manager) is socketio.AsyncManager:
        manager.emit = inline_emit.__get__(manager)  # type: ignore[method-assign]
