"""Hypercorn's access log (as hypercorn.toml configures it) escapes control characters.

A User-Agent like ``ESC[31m`` reached the log raw: terminal escape sequences and forged
log lines for whoever reads it with ``tail``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

from streamzy import logs
from streamzy.access_log import EscapeControlCharacters
from streamzy.app import create_app
from streamzy.clock import ManualClock
from tests.conftest import ROOT, free_port, login, make_settings, start_server
from tests.waiting import wait_until

# h11 refuses C0 controls in a header, but takes bytes 0x80-0xff: 0x9b is the one-byte CSI
# of many terminals (ESC [ as one character). Paths are logged percent-decoded.
HOSTILE_AGENT = b"evil\x9b31mred\x9b0m"
HOSTILE_PATH = b"/nothing%1b[31mhere%0d%0aforged"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _raw_get(port: int, agent: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + HOSTILE_PATH + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: "
                 + agent + b"\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_the_shipped_access_log_escapes_a_hostile_user_agent(
        tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url), ManualClock())
    config = Config.from_toml(ROOT / "hypercorn.toml")  # as `streamzy serve` loads it
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.errorlog = None
    config.graceful_timeout = 1
    assert config.accesslog == "-"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    records = Records()
    access = logging.getLogger("hypercorn.access")
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    if (await probe.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.02)
        access.addHandler(records)
        answer = await _raw_get(port, HOSTILE_AGENT)
        assert answer.startswith(b"HTTP/1.1 404")
        async with httpx.AsyncClient(http1=False, http2=True) as h2:  # HTTP/2 takes C0 too
            over_h2 = await h2.get(f"http://127.0.0.1:{port}/healthz",
                                   headers={"User-Agent": "h2\x1b[31mred\x07"})
        assert over_h2.status_code == 200
        for _ in range(100):  # the access line is written after the response
            if len(records.lines) >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        access.removeHandler(records)
        stop.set()
        await asyncio.wait({task}, timeout=3)
        await app.services.close()
    assert len(records.lines) == 2
    http1, http2 = records.lines
    for line in records.lines:
        assert not any(not c.isprintable() for c in line), repr(line)
    assert "evil\\x9b31mred\\x9b0m" in http1
    assert "/nothing\\x1b[31mhere\\r\\nforged" in http1
    assert "h2\\x1b[31mred\\x07" in http2


def test_the_filter_escapes_every_control_character() -> None:
    record = logging.LogRecord("hypercorn.access", logging.INFO, __file__, 1,
                               '%(h)s "%(a)s" %(U)s', ({"h": "1.2.3.4", "a": "a\x1b[2Jb\nc",
                                                        "U": "/x\x00y"},), None)
    assert EscapeControlCharacters().filter(record) is True
    assert record.getMessage() == '1.2.3.4 "a\\x1b[2Jb\\nc" /x\\x00y'


def test_hypercorn_toml_attaches_the_filter_to_the_access_logger() -> None:
    config: Any = Config.from_toml(ROOT / "hypercorn.toml")
    loggers = config.logconfig_dict["loggers"]
    assert "escape" in loggers["hypercorn.access"]["filters"]
    assert config.logconfig_dict["disable_existing_loggers"] is False


class JsonLines(logging.Handler):
    """What the JSON form writes, line by line (the same formatter hypercorn.toml names)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.StreamzyFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).split("\n"))


async def test_the_json_access_log_cannot_be_forged_and_names_request_and_user(
        tmp_path: Path, database_url: str) -> None:
    """In JSON mode every request writes exactly one line, valid JSON whatever the path and
    User-Agent held, with the request id the response carried and the signed-in user."""
    server, shutdown = await start_server(make_settings(tmp_path, database_url), ManualClock(),
                                          access_log=True)
    user = await server.make_user("alice")
    access = logging.getLogger("hypercorn.access")
    lines = JsonLines()
    logs.set_style("json")
    access.addHandler(lines)
    try:
        async with server.client() as client:
            await login(client, "alice")
            lines.lines.clear()
            signed_in = await client.get("/rooms")
        answer = await _raw_get(server.port, b'evil\x9b31m"}\xe2\x80\xa8')
        # The access line is written after the response.
        await wait_until(lambda: len(lines.lines) >= 2, what="the two access lines")
    finally:
        access.removeHandler(lines)
        logs.set_style("text")
        await shutdown()
    assert signed_in.status_code == 200 and answer.startswith(b"HTTP/1.1 404")
    parsed = []
    for line in lines.lines:
        assert line.isascii() and line.isprintable(), repr(line)
        parsed.append(json.loads(line))
    assert len(parsed) == 2, lines.lines  # no forged third line
    mine, hostile = parsed
    assert {"time", "level", "logger", "event", "request_id", "access"} <= mine.keys()
    assert mine["request_id"] == signed_in.headers["x-request-id"]
    assert mine["user_id"] == user.id
    assert mine["access"]["path"] == "/rooms" and mine["access"]["status"] == 200
    assert hostile["access"]["path"] == "/nothing\x1b[31mhere\r\nforged"
    assert hostile["access"]["user_agent"] == 'evil\x9b31m"}\xe2\x80\xa8'  # latin-1, as sent
    assert "user_id" not in hostile and hostile["level"] == "INFO"
