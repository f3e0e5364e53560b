"""Security headers and request ids for every HTTP response: pages, errors, /socket.io/.

Pure ASGI, so it also covers the Socket.IO endpoint that never passes through Quart. It is
also the last line for an exception that escapes everything inside it: the client gets a
plain 500 with the same headers (and no traceback), the log gets one line and the trace.
A text or JSON response that does not name its charset is given ``charset=utf-8``, so no
browser sniffs one (Engine.IO's own error answers say only ``text/plain``).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from streamzy import logs
from streamzy.guards.context import REQUEST_ID_KEY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
])

BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"permissions-policy",
     b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    # The legacy XSS auditor is gone from current browsers and its "block" mode enabled
    # cross-site leaks in old ones; the CSP does this job. See SECURITY.md.
    (b"x-xss-protection", b"0"),
]
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
log = logging.getLogger("streamzy.web")


def with_charset(content_type: bytes) -> bytes:
    """``text/*`` and JSON types without a charset get ``charset=utf-8``."""
    kind = content_type.split(b";", 1)[0].strip().lower()
    textual = kind.startswith(b"text/") or kind == b"application/json"
    if textual and b"charset=" not in content_type.lower():
        return content_type + b"; charset=utf-8"
    return content_type


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = [*BASE_HEADERS, *([HSTS] if hsts else [])]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(16)
        scope[REQUEST_ID_KEY] = request_id
        # Every log line written while this request (or socket connection) is handled
        # carries its id, the access line included (Hypercorn writes it from send).
        bound = logs.bind_request(request_id)
        static = scope.get("path", "").startswith("/static/")

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(name, with_charset(value) if name.lower() == b"content-type"
                            else value) for name, value in message.get("headers", [])]
                present = {name.lower() for name, _ in headers}
                extra = [h for h in self.headers if h[0] not in present]
                extra.append((b"x-request-id", request_id.encode()))
                if b"cache-control" not in present and not static:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error on %s %s (request %s)", scope.get("method", "WS"),
                          scope.get("path", ""), request_id)
            if scope["type"] != "http" or started:
                return  # nothing more can be said on this connection
            body = json.dumps({"ok": False, "code": "internal_error",
                               "message": "Something went wrong on our side. It has been "
                                          "logged.", "request_id": request_id}).encode()
            await send_with_headers({"type": "http.response.start", "status": 500,
                                     "headers": [(b"content-type", b"application/json"),
                                                 (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        finally:
            logs.unbind(bound)
