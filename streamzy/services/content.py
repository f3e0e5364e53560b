"""Message text rules: normalisation, control characters, length, hostile patterns."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# C0/C1 controls and the invisible bidi overrides used to disguise text; tab and newline
# only where text may span lines. One definition for messages, forms and JSON bodies.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n]")


def has_control_chars(text: str, *, multiline: bool = True) -> bool:
    """True if ``text`` holds a character no chat text or form field may carry."""
    return bool(_CONTROL.search(text) or (not multiline and _LINE_BREAKS.search(text)))

# Patterns that have no business in chat text and mark an injection attempt. Output is
# always escaped, so these are refused as evidence of an attack, not as the defence.
SUSPICIOUS = [
    ("script_tag", re.compile(r"<\s*/?\s*script\b", re.IGNORECASE)),
    ("javascript_url", re.compile(r"(?:java|vb)script\s*:", re.IGNORECASE)),
    ("data_html_url", re.compile(r"data\s*:\s*text/html", re.IGNORECASE)),
    ("event_handler", re.compile(r"<[^>]*\bon[a-z]+\s*=", re.IGNORECASE)),
    ("iframe_tag", re.compile(r"<\s*(?:iframe|object|embed)\b", re.IGNORECASE)),
]


@dataclass(frozen=True)
class TextProblem:
    code: str
    message: str


def clean_message(text: str, max_chars: int) -> tuple[str, TextProblem | None]:
    """Normalise ``text`` and report the first rule it breaks (None when it is fine)."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()
    if not text:
        return text, TextProblem("empty", "A message needs some text.")
    if len(text) > max_chars:
        return text, TextProblem("too_long", f"Messages are limited to {max_chars} characters.")
    if has_control_chars(text):
        return text, TextProblem("invalid_text", "The message contains control characters.")
    return text, None


def suspicious_pattern(text: str) -> str | None:
    """The name of the first hostile pattern found, or None."""
    folded = unicodedata.normalize("NFKC", text)
    for name, pattern in SUSPICIOUS:
        if pattern.search(folded):
            return name
    return None
