"""Message text rules: normalisation, control characters, length, hostile patterns."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# C0/C1 controls and the invisible bidi embeddings, overrides and isolates used to disguise
# text; tab and newline only where text may span lines. One definition for forms and JSON
# bodies (names, reasons, topics: no direction controls at all). Messages allow balanced
# embeddings and isolates, see bidi_problem.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\t\n]")


def has_control_chars(text: str, *, multiline: bool = True) -> bool:
    """True if ``text`` holds a character no form field or JSON body may carry."""
    return bool(_CONTROL.search(text) or (not multiline and _LINE_BREAKS.search(text)))


# Unicode bidi controls (UAX #9). Right-to-left writers use embeddings (LRE, RLE ... PDF)
# and isolates (LRI, RLI, FSI ... PDI) to place runs of the other direction; overrides
# (LRO, RLO) instead force the display order of every character, which is what disguises
# text ("Trojan Source", CVE-2021-42574) and has no use in chat.
_OVERRIDES = frozenset("\u202d\u202e")
_EMBED_OPEN, _EMBED_CLOSE = frozenset("\u202a\u202b"), "\u202c"
_ISOLATE_OPEN, _ISOLATE_CLOSE = frozenset("\u2066\u2067\u2068"), "\u2069"
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
MAX_BIDI_DEPTH = 16


def bidi_problem(text: str) -> str | None:
    """Why the direction controls of ``text`` are refused, or None when they are fine:
    no overrides; every embedding and isolate closed, in order, within each line (the
    Unicode algorithm ends them at a paragraph break anyway); nested at most 16 deep."""
    if not _BIDI.search(text):
        return None
    for line in text.split("\n"):
        stack: list[str] = []
        for char in _BIDI.findall(line):
            if char in _OVERRIDES:
                return "direction overrides"
            if char in _EMBED_OPEN or char in _ISOLATE_OPEN:
                stack.append(_EMBED_CLOSE if char in _EMBED_OPEN else _ISOLATE_CLOSE)
                if len(stack) > MAX_BIDI_DEPTH:
                    return "direction controls nested too deep"
            elif not stack or stack.pop() != char:
                return "unbalanced direction controls"
        if stack:
            return "unbalanced direction controls"
    return None


# Markdown code is exempt from the hostile-pattern check: talking about HTML is fine inside
# `code spans` and fenced blocks, which every Markdown renderer escapes. A span is a run of
# backticks closed by a run of the same length (CommonMark); a fence is a line of three or
# more backticks or tildes, closed by a like line or the end of the text.
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

# Hostile markup, matched only as what a browser would parse: a real tag (`<` straight
# followed by a name, then attributes and `>`) or a URL scheme at the start of a token,
# followed by the rest of a URL. Words in prose ("JavaScript: it runs everywhere", "a < b >
# c") never match. Output is always escaped, so these mark an injection attempt (audited,
# and refused or flagged as STREAMZY_SUSPICIOUS_MESSAGES says); they are not the defence.
# Every pattern is linear in the text's length: no nested quantifiers to backtrack through.
_TAG = re.compile(r"<(/?)([a-z][a-z0-9:-]*)((?:[\s/][^<>]*)?)>", re.IGNORECASE)
_HANDLER_ATTRIBUTE = re.compile(r"[\s/\"']on[a-z]+\s*=", re.IGNORECASE)
_URL_BREAKS = r"[\t\n\r]*"  # browsers drop these inside a URL, "java\tscript:" included
_URLS = [
    ("javascript_url", re.compile(
        rf"(?<![\w.+-])(?:java|vb){_URL_BREAKS}script{_URL_BREAKS}:(?=\S)", re.IGNORECASE)),
    ("data_html_url", re.compile(rf"(?<![\w.+-])data{_URL_BREAKS}:{_URL_BREAKS}text/html",
                                 re.IGNORECASE)),
]
_EMBEDDING_TAGS = frozenset({"iframe", "object", "embed"})


def _tag_pattern(text: str) -> str | None:
    for tag in _TAG.finditer(text):
        name = tag.group(2).lower()
        if name == "script":
            return "script_tag"
        if name in _EMBEDDING_TAGS and not tag.group(1):
            return "iframe_tag"
        if not tag.group(1) and _HANDLER_ATTRIBUTE.search(tag.group(3)):
            return "event_handler"
    return None


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
    if _MESSAGE_CONTROL.search(text):
        return text, TextProblem("invalid_text", "The message contains control characters.")
    bidi = bidi_problem(text)
    if bidi is not None:
        return text, TextProblem("invalid_text", f"The message contains {bidi}. Close every "
                                 "direction embedding or isolate on its line; overrides "
                                 "are not accepted.")
    return text, None


def without_code(text: str) -> str:
    """``text`` with Markdown fenced code blocks and code spans blanked out."""
    lines: list[str] = []
    fence = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line[match.end():].strip():
                fence = ""
            lines.append("")
        elif match and not (match.group(1)[0] == "`" and "`" in line[match.end():]):
            fence = match.group(1)
            lines.append("")
        else:
            lines.append(line)
    return _CODE_SPAN.sub(" ", "\n".join(lines))


def suspicious_pattern(text: str) -> str | None:
    """The name of the first hostile pattern found outside Markdown code, or None.

    Compatibility forms are folded first (NFKC: a full-width less-than sign is a <).
    """
    folded = unicodedata.normalize("NFKC", text)
    if "<" not in folded and ":" not in folded:
        return None  # the common case: nothing that could form a tag or a scheme
    folded = without_code(folded)
    found = _tag_pattern(folded)
    if found is not None:
        return found
    for name, pattern in _URLS:
        if pattern.search(folded):
            return name
    return None


# Reactions are emoji: pictographs with their joiners, variation selectors, skin tones,
# keycaps, flags and tag sequences; nothing that could carry words or markup.
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2190, 0x21FF), (0x2300, 0x23FF), (0x2460, 0x24FF),
                 (0x25A0, 0x27BF), (0x2900, 0x297F), (0x2B00, 0x2BFF), (0x3030, 0x3030),
                 (0x303D, 0x303D), (0x3297, 0x3299), (0xE0020, 0xE007F))
_EMOJI_SINGLES = frozenset({0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139})
_EMOJI_JOINERS = frozenset({0x200D, 0xFE0E, 0xFE0F, 0x20E3})
_KEYCAP_BASES = frozenset("0123456789#*")
MAX_EMOJI_CODEPOINTS = 16


def emoji_problem(value: str) -> str | None:
    """Why ``value`` is not one emoji (or a short emoji sequence), or None when it is."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_EMOJI_CODEPOINTS:
        return f"A reaction is one emoji (1-{MAX_EMOJI_CODEPOINTS} code points)."
    pictures = 0
    for index, char in enumerate(value):
        point = ord(char)
        if point in _EMOJI_JOINERS:
            continue
        if char in _KEYCAP_BASES and value[index + 1:index + 3].replace("\ufe0f", "")[:1] \
                == "\u20e3":
            pictures += 1
            continue
        if point in _EMOJI_SINGLES or any(lo <= point <= hi for lo, hi in _EMOJI_RANGES):
            pictures += 1
            continue
        return "A reaction is an emoji, not text."
    if pictures == 0:
        return "A reaction is an emoji, not text."
    return None
