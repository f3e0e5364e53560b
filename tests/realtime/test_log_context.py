"""A log line written while a socket event is handled names the event's user and the request
id of its connection's handshake (streamzy/logs.py, bound in the namespace's guard)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from streamzy import logs
from streamzy.realtime.principal import Principal
from tests.conftest import LiveServer
from tests.realtime.helpers import connected


async def test_a_socket_events_log_lines_carry_its_user_and_request(
        server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamzy.test")
    seen: list[tuple[str, int | None]] = []
    namespace = server.app.realtime.namespace

    async def probe(sid: str, principal: Principal, data: Any) -> dict[str, Any]:
        logging.getLogger("streamzy.test").info("probe event")
        seen.append((principal.info.request_id, principal.user_id))
        return {"ok": True}

    namespace._handlers["probe"] = probe  # a test-only event that logs
    alice = await connected(server, "alice")
    try:
        assert await alice.call("probe", {}) == {"ok": True}
    finally:
        await alice.close()
        del namespace._handlers["probe"]
    [record] = [r for r in caplog.records if r.getMessage() == "probe event"]
    line = json.loads(logs.JsonFormatter().format(record))
    (handshake, user_id), = seen
    assert handshake and line["request_id"] == handshake
    assert line["user_id"] == user_id
