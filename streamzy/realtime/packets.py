"""Socket.IO packets from clients, decoded without ever raising.

python-socketio decodes a client's packet before any handler runs; a packet it cannot
decode (bad JSON, nesting deep enough to exhaust the recursion limit, a frame that is not
text, an event that is not a list naming an event) raised inside Engine.IO and was logged
as a traceback for anyone to trigger. Binary packets announce attachments and then wait
for them, so a client that never sends them wedges its own connection.

This packet class (python-socketio's documented ``serializer=`` hook) turns each of those
into an ordinary event with a marker name, so the namespace answers with an error ack
(``invalid_payload`` / ``binary_not_supported``), audits it, and the connection goes on.
Streamzy has no binary events: nothing legitimate is lost.
"""

from __future__ import annotations

from typing import Any

from socketio import packet

MALFORMED = "\x00malformed"
BINARY = "\x00binary"
CLIENT_TYPES = (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK)


class GuardedPacket(packet.Packet):  # type: ignore[misc]
    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, TypeError, RecursionError, IndexError):
            self._replace(MALFORMED)
            return 0
        if self.packet_type in (packet.BINARY_EVENT, packet.BINARY_ACK) or attachments:
            self._replace(BINARY)
            return 0
        if self.packet_type not in CLIENT_TYPES:
            self.packet_type = packet.EVENT  # e.g. CONNECT_ERROR: only servers send those
            self._replace(MALFORMED)
        elif self.packet_type == packet.EVENT and not (
                isinstance(self.data, list) and self.data and isinstance(self.data[0], str)):
            self._replace(MALFORMED)
        elif self.packet_type == packet.ACK and not isinstance(self.data, list):
            self.data = []
        return 0

    def _replace(self, marker: str) -> None:
        """Whatever arrived becomes an event named ``marker``, on the default namespace
        unless a valid one was already read (keeping its ack id, so the error is acked)."""
        if self.packet_type in (packet.ACK, packet.BINARY_ACK):
            self.packet_type, self.data = packet.ACK, []
            return
        if self.packet_type == packet.CONNECT:
            self.data = marker  # not an auth object: the connect is judged without one
            return
        self.packet_type = packet.EVENT
        self.data = [marker]
        if not isinstance(self.namespace, str):
            self.namespace = None
        if not isinstance(self.id, int):
            self.id = None
