"""Hypercorn's access log, escaped: no control character from a request reaches the log raw.

Hypercorn writes request fields (User-Agent, Referer, the decoded path) as they came, so
``ESC[31m`` could recolour a terminal running ``tail`` and ``\\r``/``\\n`` could forge lines.
hypercorn.toml attaches this filter to the ``hypercorn.access`` logger (``logconfig_dict``),
so ``streamzy serve``, ``hypercorn -c hypercorn.toml`` and the test servers all use it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from streamzy.guards.context import escape_text

LINE_MAX = 8192  # characters of one access line, after escaping
FIELD_MAX = 1024  # characters of one field of the JSON form
# The fields of Hypercorn's access atoms the JSON form carries, by name. A fixed list: the
# atoms also hold every request header (Cookie, Authorization) and every environment
# variable (the server's secrets), none of which may reach a log. The query string and the
# Referer are left out too: Engine.IO's polling puts its session id in the query.
ACCESS_FIELDS = {"h": "client", "m": "method", "U": "path", "H": "protocol", "s": "status",
                 "B": "bytes", "D": "duration_us", "a": "user_agent"}


class EscapeControlCharacters(logging.Filter):
    """Replaces the record's message by its escaped form (the audit log's escape_text), and
    keeps the line's listed fields as ``record.access`` for the JSON form (streamzy/logs.py,
    whose JSON encoding escapes them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        if isinstance(atoms, Mapping):
            record.access = {name: _field(atoms.get(atom))
                             for atom, name in ACCESS_FIELDS.items()}
        record.msg = escape_text(record.getMessage(), LINE_MAX)
        record.args = None
        return True


def _field(value: object) -> object:
    if isinstance(value, int) or value is None:
        return value
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else text[:FIELD_MAX]
