"""The security-headers middleware as the last line: an exception that escapes the app."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamzy.guards.headers import SecurityHeadersMiddleware, with_charset


async def call(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/socket.io/", "headers": []}
    await SecurityHeadersMiddleware(app, hsts=True)(scope, receive, send)
    return sent


async def test_an_escaping_exception_becomes_a_500_with_headers(
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'lower'")

    start, body = await call(broken)
    assert start["status"] == 500
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json; charset=utf-8"
    for name in (b"content-security-policy", b"strict-transport-security",
                 b"x-content-type-options", b"x-request-id"):
        assert name in headers
    answer = json.loads(body["body"])
    assert answer["code"] == "internal_error"
    assert "NoneType" not in body["body"].decode()  # nothing internal reaches the client
    assert "unhandled error" in caplog.text


async def test_after_the_response_started_nothing_more_is_sent() -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        raise RuntimeError("mid-stream")

    sent = await call(half)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    assert dict(sent[0]["headers"])[b"content-type"] == b"text/plain; charset=utf-8"


@pytest.mark.parametrize(("given", "expected"), [
    (b"text/plain", b"text/plain; charset=utf-8"),
    (b"text/html; charset=utf-8", b"text/html; charset=utf-8"),
    (b"application/json", b"application/json; charset=utf-8"),
    (b"application/octet-stream", b"application/octet-stream"),
    (b"image/svg+xml", b"image/svg+xml"),
])
def test_charset_is_named_for_text(given: bytes, expected: bytes) -> None:
    assert with_charset(given) == expected
