"""The CSRF helpers on their own: the anonymous token, the comparison, the origin check."""

from __future__ import annotations

import pytest

from streamzy.guards.csrf import anonymous_token, origin_problem, tokens_match

OWN = "http://chat.example.org"
SECRET = "server-secret-" + "z" * 32


def problem(**headers: str | None) -> str | None:
    values: dict[str, str | None] = {"sec_fetch_site": None, "origin": None, "referer": None}
    values.update(headers)
    return origin_problem(own_origin=OWN, allowed=["https://app.example.org/"], **values)


def test_the_anonymous_token_is_bound_to_its_cookie_and_the_server_secret() -> None:
    token = anonymous_token(SECRET, "cookie-a")
    assert token == anonymous_token(SECRET, "cookie-a")
    assert token != anonymous_token(SECRET, "cookie-b")
    assert token != anonymous_token("another-" + SECRET, "cookie-a")
    assert "cookie-a" not in token and len(token) == 64


@pytest.mark.parametrize(("expected", "given", "ok"), [
    ("abc123", "abc123", True),
    ("abc123", "abc124", False),
    ("abc123", "", False),
    ("abc123", None, False),
    ("", "", False),  # no token on record never matches an empty one
    ("", None, False),
])
def test_tokens_match_only_when_both_are_present_and_equal(expected: str, given: str | None,
                                                           ok: bool) -> None:
    assert tokens_match(expected, given) is ok


@pytest.mark.parametrize("headers", [
    {"sec_fetch_site": "same-origin", "origin": OWN},
    {"sec_fetch_site": "none"},  # typed into the address bar
    {"origin": "HTTP://CHAT.EXAMPLE.ORG"},
    {"origin": "https://app.example.org"},  # configured, trailing slash ignored
    {"referer": OWN + "/account"},
    {},  # no browser headers at all: the token check alone decides
])
def test_our_own_pages_pass(headers: dict[str, str]) -> None:
    assert problem(**headers) is None


@pytest.mark.parametrize(("headers", "reason"), [
    ({"sec_fetch_site": "cross-site", "origin": OWN}, "sec-fetch-site:cross-site"),
    ({"sec_fetch_site": "same-site"}, "sec-fetch-site:same-site"),
    ({"origin": "https://evil.example"}, "foreign-origin"),
    ({"origin": "http://chat.example.org.evil.example"}, "foreign-origin"),
    ({"origin": "null"}, "null-origin"),
    ({"referer": "https://evil.example/chat.example.org"}, "foreign-referer"),
])
def test_other_sites_are_named(headers: dict[str, str], reason: str) -> None:
    assert problem(**headers) == reason
