"""tokens_match: constant-time, and any token that is not ours is a plain mismatch."""

from __future__ import annotations

import pytest

from streamzy.guards.csrf import tokens_match

OURS = "0f" * 32


@pytest.mark.parametrize("given", [None, "", "x", OURS.upper(), OURS + " ", "\u00e9" * 64,
                                   "\U0001f600", "\ud800", OURS[:-1] + "\u00e9"])
def test_anything_but_the_token_is_a_mismatch(given: str | None) -> None:
    assert tokens_match(OURS, given) is False


def test_the_token_matches() -> None:
    assert tokens_match(OURS, str(OURS)) is True
    assert tokens_match("", "") is False
