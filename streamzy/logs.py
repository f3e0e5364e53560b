"""The server's logs, configured in one place: JSON lines for log shippers or text for people.

Every line says when (UTC), how bad, which logger and what happened, plus the request id and
the user id of the request or socket event being handled: the web edge and the socket edge
bind them to a context variable (``bind_request``, ``bind_user``), so a log call anywhere
below them (services included) carries them without passing them along.

JSON is written with ``ensure_ascii``: no control character, line separator or terminal
escape from a path, a user agent or an exception message reaches the line raw, so nothing a
client sends can end a line early or forge the next one. The text form escapes the message
the same way (the traceback, which only the server writes, stays on its own lines).

Why a ``logging.Formatter`` and not structlog: every library here (Hypercorn, Quart,
python-socketio, SQLAlchemy) logs through the standard ``logging`` module; a formatter on the
handlers turns all of it into the same lines without another dependency or wrapping loggers.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamzy.guards.context import escape_text

if TYPE_CHECKING:
    from streamzy.config import Settings

EVENT_MAX = 16384  # characters of one message (a traceback is kept whole)
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s%(where)s"
# Hypercorn's own access line format, kept for the text form (hypercorn.toml points here).
ACCESS_TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"


@dataclass(frozen=True)
class LogContext:
    request_id: str = ""
    user_id: int | None = None


NOBODY = LogContext()  # outside any request: background rounds, start and stop
_context: ContextVar[LogContext] = ContextVar("streamzy_log_context", default=NOBODY)
# Attributes every LogRecord has; anything else on a record came from ``extra=`` (or a filter)
# and is written as a field of its own.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "where", "streamzy_context"}
_style: list[str] = ["text"]  # what configure() chose; formatters built by dictConfig read it


def current() -> LogContext:
    return _context.get()


def bind_request(request_id: str) -> Token[LogContext]:
    """A new request (or connection): its id, and no user until one is known."""
    return _context.set(LogContext(request_id=request_id))


def bind_user(user_id: int | None) -> None:
    """The user the current request or socket event acts for (None: nobody signed in)."""
    _context.set(replace(_context.get(), user_id=user_id))


def bind_event(request_id: str, user_id: int | None) -> None:
    """A socket event: the request id of its connection's handshake and its user. Each event
    runs in a task of its own, so this reaches no other event."""
    _context.set(LogContext(request_id=request_id, user_id=user_id))


def unbind(token: Token[LogContext]) -> None:
    _context.reset(token)


def _context_of(record: logging.LogRecord) -> LogContext:
    """The ids as they were when the record was made (a handler may format it later)."""
    stamped = getattr(record, "streamzy_context", None)
    return stamped if isinstance(stamped, LogContext) else current()


def _stamp_records() -> None:
    """Every record remembers the request and user it was written for, so a record that a
    queue or a test formats later still names them."""
    make = logging.getLogRecordFactory()
    if getattr(make, "streamzy_stamps", False):
        return

    def stamped(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        context = _context.get()
        if context is not NOBODY:
            record.streamzy_context = context
        return record

    stamped.streamzy_stamps = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(stamped)


_stamp_records()


def _utc(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, request_id, user_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context_of(record)
        entry: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage()[:EVENT_MAX],
        }
        if context.request_id:
            entry["request_id"] = context.request_id
        if context.user_id is not None:
            entry["user_id"] = context.user_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """A line for people: the message escaped, the request and user ids at the end."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt, DATE_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        context = _context_of(record)
        ids = [f"request={context.request_id}"] if context.request_id else []
        if context.user_id is not None:
            ids.append(f"user={context.user_id}")
        record.message = escape_text(record.message, EVENT_MAX)
        record.where = f" ({' '.join(ids)})" if ids else ""
        return super().formatMessage(record)


class StreamzyFormatter(logging.Formatter):
    """The formatter hypercorn.toml names for Hypercorn's loggers: JSON or text as
    ``configure`` chose, decided per line (dictConfig may build it before or after)."""

    def __init__(self, text_format: str = ACCESS_TEXT_FORMAT) -> None:
        super().__init__()
        self._json = JsonFormatter()
        self._text = TextFormatter(text_format)

    def format(self, record: logging.LogRecord) -> str:
        return (self._json if _style[0] == "json" else self._text).format(record)


_HANDLER_NAME = "streamzy-stderr"


def set_style(style: str) -> None:
    """The format Hypercorn's loggers write in (``StreamzyFormatter``): json or text."""
    _style[0] = "json" if style == "json" else "text"


def configure(settings: Settings) -> str:
    """Send the server's logs to stderr in the configured format (once per process; a second
    call replaces the first). Returns the format in force."""
    style = settings.log_style
    set_style(style)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and worse
    logging.getLogger("streamzy").setLevel(settings.log_level)
    logging.getLogger("hypercorn.error").setLevel(logging.INFO)
    return style
