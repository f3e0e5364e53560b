"""Generated one-time passwords: strong, and readable out loud (issue 16, item 6)."""

from __future__ import annotations

import string

from streamzy.services.passwords import (
    READABLE_DIGITS,
    READABLE_LOWER,
    READABLE_SYMBOLS,
    READABLE_UPPER,
    generate_password,
    password_problems,
)

LOOK_ALIKES = set("0Oo1lI|`'\"")


def test_alphabet_has_no_look_alikes_and_few_signs() -> None:
    alphabet = READABLE_UPPER + READABLE_LOWER + READABLE_DIGITS + READABLE_SYMBOLS
    assert not set(alphabet) & LOOK_ALIKES
    assert len(set(alphabet)) == len(alphabet) == 24 + 24 + 8 + len(READABLE_SYMBOLS)
    assert len(READABLE_SYMBOLS) <= 6 and set(READABLE_SYMBOLS) <= set(string.punctuation)


def test_generated_passwords_mix_every_type_and_avoid_look_alikes() -> None:
    seen: set[str] = set()
    for _ in range(500):
        password = generate_password()
        assert len(password) == 16
        assert not set(password) & LOOK_ALIKES
        assert any(c in READABLE_UPPER for c in password)
        assert any(c in READABLE_LOWER for c in password)
        assert any(c in READABLE_DIGITS for c in password)
        assert any(c in READABLE_SYMBOLS for c in password)
        # Good enough to be a password at all under our own rules.
        assert password_problems(password, min_length=12) == []
        seen.add(password)
    assert len(seen) == 500  # random, not a fixed or short cycle
