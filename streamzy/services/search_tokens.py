"""Turning text into search tokens, the same way for a stored message and for a query.

Normalisation: NFKC (compatibility forms: full-width letters, ligatures), casefold, then
NFKD with the combining marks dropped, so "Café", "CAFÉ" and "cafe" are one token. Words
are runs of letters and digits: punctuation, markdown (``*bold*``, ``[link](url)``,
backticks), underscores and URL separators all split, and a URL's scheme and ``www`` are
dropped (``https://www.example.com/deploy`` gives ``example``, ``com``, ``deploy``).

What is indexed (``index_terms``): every distinct word of MIN_WORD..MAX_WORD characters,
as its prefixes of PREFIX_MIN..PREFIX_MAX characters (the word itself is its own prefix
when it is that short) plus the whole word when it is longer than PREFIX_MAX. So
"deployment" gives dep, depl, deplo, deploy, deploym, deployme, deployment. The
bound on prefix length keeps a message to at most PREFIX_MAX - PREFIX_MIN + 2 terms per
distinct word (about 3 to 4 for typical chat words) and MAX_TERMS in all; words after
that cap are not searchable (a very long message is indexed by its first few hundred
words). A query word longer than PREFIX_MAX is looked up by its PREFIX_MAX prefix (or
whole, when it must match a whole word) and the decrypted text is checked.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MIN_WORD = 3  # "a", "is", "ok": too common to be worth an index entry
MAX_WORD = 32  # longer: hashes, base64 and pasted blobs, not words
PREFIX_MIN = 3
PREFIX_MAX = 8
MAX_TERMS = 256  # per message: bounds the rows one message adds
MAX_QUERY_WORDS = 8

_WORD = re.compile(r"[^\W_]+")
_URL_NOISE = re.compile(r"\b(?:https?|ftp)://(?:www\.)?|\bwww\.", re.IGNORECASE)


def normalise(text: str) -> str:
    """Compatibility-fold, casefold and strip diacritics."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The normalised words of ``text`` in order (with repeats), of indexable length."""
    cleaned = _URL_NOISE.sub(" ", normalise(text))
    return [w for w in _WORD.findall(cleaned) if MIN_WORD <= len(w) <= MAX_WORD]


def word_terms(word: str) -> list[str]:
    """The index terms of one normalised word: its bounded prefixes, and the whole word
    when it is longer than those."""
    terms = [word[:n] for n in range(PREFIX_MIN, min(len(word), PREFIX_MAX) + 1)]
    if len(word) > PREFIX_MAX:
        terms.append(word)
    return terms


def index_terms(text: str) -> list[str]:
    """The distinct terms a message is indexed under, at most MAX_TERMS."""
    seen: dict[str, None] = {}
    for word in dict.fromkeys(words(text)):
        for term in word_terms(word):
            if term not in seen:
                if len(seen) >= MAX_TERMS:
                    return list(seen)
                seen[term] = None
    return list(seen)


@dataclass(frozen=True)
class Query:
    """A parsed query: whole words that must all occur, and the last word, which a word
    of the message must start with."""

    whole: tuple[str, ...]
    prefix: str

    @property
    def lookups(self) -> tuple[str, ...]:
        """The terms to find in the index (one per query word, deduplicated)."""
        # A whole word is its own term (its prefix entry when short, its whole-word entry
        # when longer than PREFIX_MAX); the last word is found by its bounded prefix.
        return tuple(dict.fromkeys((*self.whole, self.prefix[:PREFIX_MAX])))

    def matches(self, text: str) -> bool:
        """Does the decrypted text really hold every word (drops index false positives:
        a prefix entry standing for a longer word, or a message past the term cap)."""
        present = set(words(text))
        if not all(w in present for w in self.whole):
            return False
        return any(w.startswith(self.prefix) for w in present)


def parse_query(text: str) -> Query | None:
    """The query's words (at most MAX_QUERY_WORDS, repeats dropped); None when nothing
    in it is long enough to search for."""
    found = list(dict.fromkeys(words(text)))[:MAX_QUERY_WORDS]
    if not found:
        return None
    last = found[-1]
    whole = tuple(w for w in found[:-1] if w != last)
    return Query(whole, last)


def snippet(text: str, query: Query, width: int = 160) -> str:
    """A piece of the text around the first query word, at most ``width`` characters."""
    if len(text) <= width:
        return text
    lowered = normalise(text)
    # Normalisation may change lengths (ligatures, marks): fall back to the start.
    start = 0
    if len(lowered) == len(text):
        hits = [lowered.find(w) for w in (*query.whole, query.prefix)]
        hits = [h for h in hits if h >= 0]
        if hits:
            start = max(0, min(hits) - width // 3)
    piece = text[start:start + width]
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(text) else "")
