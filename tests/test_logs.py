"""The server's structured logs (streamzy/logs.py): one valid JSON object per line with the
agreed fields, ids from the request or socket event being handled, nothing a client sends
able to break a line, and one place that picks the format."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from streamzy import logs
from streamzy.access_log import EscapeControlCharacters
from streamzy.config import Settings
from tests.conftest import make_settings

HOSTILE = 'bad\r\n{"level":"CRITICAL","event":"forged"}\x1b[31m\u2028\u0085\x9b\x00end'


def record(message: str = "something happened", *args: object, level: int = logging.INFO,
           name: str = "streamzy.test", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args or None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def one_line(text: str) -> dict[str, object]:
    """The line must be one line of printable ASCII that parses as a JSON object."""
    assert "\n" not in text and "\r" not in text
    assert text.isascii() and text.isprintable(), repr(text)
    parsed = json.loads(text)
    assert isinstance(parsed, dict)
    return parsed


@pytest.fixture
def unbound() -> Iterator[None]:
    token = logs.bind_request("")
    try:
        yield
    finally:
        logs.unbind(token)


def test_a_json_line_has_time_level_logger_event_and_extra_fields(unbound: None) -> None:
    line = one_line(logs.JsonFormatter().format(
        record("%s rooms purged", 3, level=logging.WARNING, room_count=3, took_ms=1.5)))
    assert line["level"] == "WARNING"
    assert line["logger"] == "streamzy.test"
    assert line["event"] == "3 rooms purged"
    assert line["room_count"] == 3 and line["took_ms"] == 1.5
    assert str(line["time"]).endswith("Z")
    assert datetime.fromisoformat(str(line["time"])).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert "request_id" not in line and "user_id" not in line  # nobody: no empty fields


def test_the_request_and_user_bound_by_the_edge_are_on_every_line() -> None:
    token = logs.bind_request("a" * 32)
    try:
        logs.bind_user(42)
        line = one_line(logs.JsonFormatter().format(record()))
        assert line["request_id"] == "a" * 32
        assert line["user_id"] == 42
        logs.bind_event("b" * 32, 7)  # a socket event: its connection's request, its user
        line = one_line(logs.JsonFormatter().format(record()))
        assert (line["request_id"], line["user_id"]) == ("b" * 32, 7)
        text = logs.TextFormatter().format(record())
        assert text.endswith(f"something happened (request={'b' * 32} user=7)")
    finally:
        logs.unbind(token)
    assert logs.current() == logs.NOBODY


def test_a_record_keeps_the_ids_it_was_written_with_when_formatted_later() -> None:
    """A queue (the audit trail's) or a capture formats records after the request is gone."""
    token = logs.bind_request("c" * 32)
    try:
        logs.bind_user(9)
        written = logging.getLogger("streamzy.test").makeRecord(
            "streamzy.test", logging.INFO, __file__, 1, "later", None, None)
    finally:
        logs.unbind(token)
    line = one_line(logs.JsonFormatter().format(written))
    assert (line["request_id"], line["user_id"]) == ("c" * 32, 9)
    assert "streamzy_context" not in line


def test_a_hostile_message_or_field_stays_on_its_line_and_reads_back_exactly(
        unbound: None) -> None:
    line = one_line(logs.JsonFormatter().format(
        record("unhandled error on %s", HOSTILE, agent=HOSTILE)))
    assert line["event"] == f"unhandled error on {HOSTILE}"
    assert line["agent"] == HOSTILE
    assert line["level"] == "INFO"  # the forged level inside the text changed nothing


def test_an_exception_is_one_field_of_the_same_line(unbound: None) -> None:
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        failed = record("socket event %s failed", "message", level=logging.ERROR)
        failed.exc_info = sys.exc_info()
    line = one_line(logs.JsonFormatter().format(failed))
    assert "Traceback" in str(line["exc"]) and HOSTILE in str(line["exc"])


def test_the_text_form_escapes_the_message(unbound: None) -> None:
    text = logs.TextFormatter().format(record("path %s", HOSTILE))
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "\\r\\n" in text and "\\x1b[31m" in text and "\\u2028" in text


def test_the_access_line_in_json_keeps_only_its_listed_fields(unbound: None) -> None:
    """Hypercorn's access atoms hold every header and environment variable: the Cookie, the
    Authorization header and the server's secrets must not follow them into the line."""
    atoms = {"h": "10.0.0.1:5000", "m": "GET", "U": HOSTILE, "H": "1.1", "s": 404, "B": "12",
             "D": 3100, "a": HOSTILE, "q": "sid=engine-io-session", "f": "https://x/?t=1",
             "{cookie}i": "__Host-streamzy_session=cookie-secret",
             "{authorization}i": "Bearer szb_bot_secret",
             "{streamzy_secret_key}e": "env-secret"}
    access = record('%(h)s "%(m)s %(U)s" %(s)s "%(a)s"', atoms, name="hypercorn.access")
    assert EscapeControlCharacters().filter(access)
    logs.set_style("json")
    try:
        text = logs.StreamzyFormatter().format(access)
    finally:
        logs.set_style("text")
    line = one_line(text)
    assert line["logger"] == "hypercorn.access"
    assert line["access"] == {"client": "10.0.0.1:5000", "method": "GET", "path": HOSTILE,
                              "protocol": "1.1", "status": 404, "bytes": 12,
                              "duration_us": 3100, "user_agent": HOSTILE}
    for secret in ("cookie-secret", "szb_bot_secret", "env-secret", "engine-io-session",
                   "t=1"):
        assert secret not in text
    assert logs.StreamzyFormatter().format(access).startswith("[")  # text again


def test_json_in_production_text_in_development_unless_set(tmp_path: Path) -> None:
    dev = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert dev.log_style == "text"
    assert dev.model_copy(update={"log_format": "json"}).log_style == "json"
    production = Settings.model_construct(env="production", log_format="")
    assert production.log_style == "json"
    assert Settings.model_construct(env="production", log_format="text").log_style == "text"


def test_configure_installs_one_stderr_handler_in_the_chosen_format(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("streamzy").level)
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        assert logs.configure(settings.model_copy(update={"log_format": "json"})) == "json"
        assert logs.configure(settings.model_copy(update={"log_format": "json",
                                                          "log_level": "DEBUG"})) == "json"
        ours = [h for h in root.handlers if h not in before[0]]
        assert len(ours) == 1  # a second call replaced the first
        assert isinstance(ours[0].formatter, logs.JsonFormatter)
        assert logging.getLogger("streamzy").level == logging.DEBUG
        assert logs.configure(settings) == "text"
        ours = [h for h in root.handlers if h not in before[0]]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.TextFormatter)
    finally:
        for handler in [h for h in root.handlers if h not in before[0]]:
            root.removeHandler(handler)
        root.setLevel(before[1])
        logging.getLogger("streamzy").setLevel(before[2])
        logs.set_style("text")
