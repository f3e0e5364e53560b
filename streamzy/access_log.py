"""Hypercorn's access log, escaped: no control character from a request reaches the log raw.

Hypercorn writes request fields (User-Agent, Referer, the decoded path) as they came, so
``ESC[31m`` could recolour a terminal running ``tail`` and ``\\r``/``\\n`` could forge lines.
hypercorn.toml attaches this filter to the ``hypercorn.access`` logger (``logconfig_dict``),
so ``streamzy serve``, ``hypercorn -c hypercorn.toml`` and the test servers all use it.
"""

from __future__ import annotations

import logging

from streamzy.guards.context import escape_text

LINE_MAX = 8192  # characters of one access line, after escaping


class EscapeControlCharacters(logging.Filter):
    """Replaces the record's message by its escaped form (the audit log's escape_text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = escape_text(record.getMessage(), LINE_MAX)
        record.args = None
        return True
