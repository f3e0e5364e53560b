"""Who is asking: client address, user agent and request id, from any ASGI scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REQUEST_ID_KEY = "streamzy.request_id"
UA_MAX = 256


def escape_text(value: str, limit: int) -> str:
    """Escape non-printable characters and cap the length (for logs and audit rows)."""
    out = []
    for char in value[: limit * 2]:
        out.append(char if char.isprintable() else char.encode("unicode_escape").decode("ascii"))
    return "".join(out)[:limit]


@dataclass(frozen=True)
class RequestInfo:
    ip: str = ""
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> RequestInfo:
        """Read the trusted client address (after ProxyFix), the user agent and request id."""
        client = scope.get("client") or ("", 0)
        user_agent = ""
        for name, value in scope.get("headers") or []:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
                break
        return cls(
            ip=str(client[0])[:64],
            user_agent=escape_text(user_agent, UA_MAX),
            request_id=str(scope.get(REQUEST_ID_KEY, "")),
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> RequestInfo:
        """Socket.IO hands handlers a WSGI-like environ that keeps the ASGI scope."""
        scope = environ.get("asgi.scope") or {}
        return cls.from_scope(scope)


SYSTEM = RequestInfo(ip="local", user_agent="streamzy-cli", request_id="")
