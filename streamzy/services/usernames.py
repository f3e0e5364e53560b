"""Username normalisation: one canonical form, so look-alikes can't make a second account."""

from __future__ import annotations

import re
import unicodedata

_ALLOWED = re.compile(r"^[a-z0-9][a-z0-9._-]{1,30}[a-z0-9]$")
RULE = "3-32 characters: letters, digits, dot, dash or underscore; start and end with a letter or digit."


def normalize_username(raw: str) -> str | None:
    """NFKC + casefold, then ASCII letters, digits and ``._-`` only; None if not allowed.

    NFKC folds full-width and compatibility forms (``ＡＤＭＩＮ`` -> ``admin``); the ASCII
    rule then refuses cross-script confusables (Cyrillic ``а``) that no fold would catch.
    """
    if not isinstance(raw, str) or len(raw) > 128:
        return None
    folded = unicodedata.normalize("NFKC", raw.strip()).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    return folded if _ALLOWED.match(folded) else None
