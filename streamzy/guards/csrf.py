"""CSRF: a synchronizer token plus a Fetch-Metadata / Origin check.

Signed-in users carry the token kept with their server-side session (new at every
login). Before login the token is an HMAC of a random, HttpOnly cookie, so a forged
form from another site can neither read nor produce it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def anonymous_token(secret: str, anon_cookie: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + anon_cookie.encode(), hashlib.sha256).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison; any other token, non-ASCII included, is a mismatch.

    ``hmac.compare_digest`` raises TypeError for a str with non-ASCII characters, so both
    sides are compared as UTF-8 bytes (our tokens are ASCII; a non-ASCII one never matches).
    """
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                               given.encode("utf-8", "surrogatepass"))


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_problem(*, sec_fetch_site: str | None, origin: str | None, referer: str | None,
                   own_origin: str, allowed: Iterable[str]) -> str | None:
    """Why the request does not come from our own pages, or None when it does."""
    if sec_fetch_site and sec_fetch_site not in ("same-origin", "none"):
        return f"sec-fetch-site:{sec_fetch_site}"
    trusted = {own_origin.lower(), *(o.lower().rstrip("/") for o in allowed)}
    if origin and origin != "null":
        if origin.lower().rstrip("/") not in trusted:
            return "foreign-origin"
    elif origin == "null":
        return "null-origin"
    elif referer and _origin_of(referer) not in trusted:
        return "foreign-referer"
    return None
