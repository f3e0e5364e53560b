"""Errors that use cases raise; each edge maps ``kind`` to its own status or ack code."""

from __future__ import annotations


class ServiceError(Exception):
    kind = "invalid"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFound(ServiceError):
    kind = "not_found"


class Conflict(ServiceError):
    kind = "conflict"


class Forbidden(ServiceError):
    kind = "forbidden"


class Invalid(ServiceError):
    kind = "invalid"


class TooLarge(ServiceError):
    """Over a size limit or a quota (an upload): HTTP 413."""

    kind = "too_large"


class Unsupported(ServiceError):
    """A kind of content the server does not take (an upload's sniffed type): HTTP 415."""

    kind = "unsupported"


class Unavailable(ServiceError):
    """A backing service (the database) cannot be reached: nothing was changed; retry."""

    kind = "unavailable"


def as_service_error(exc: BaseException) -> ServiceError | None:
    """The service error an unexpected exception stands for, or None for a real bug.

    Edges call this in their last-resort handler, so that an outage of the database reads
    as ``unavailable`` without the edges knowing anything about storage.
    """
    if isinstance(exc, ServiceError):
        return exc
    from streamzy.storage.errors import is_unavailable  # services may import storage; edges may not

    if is_unavailable(exc):
        return Unavailable("unavailable", "The server cannot reach its database. "
                           "Nothing was changed; retry shortly.")
    return None


class RateLimited(ServiceError):
    """Over a rate limit; ``retry_after`` seconds until the next attempt may pass."""

    kind = "rate_limited"

    def __init__(self, limit: str, retry_after: float, *, code: str = "rate_limited",
                 message: str = "You are sending too fast.") -> None:
        super().__init__(code, message)
        self.limit = limit
        self.retry_after = retry_after
