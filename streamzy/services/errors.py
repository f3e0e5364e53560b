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
