"""Error pages and JSON errors: one shape for every refusal, and the last-resort handlers.

Browsers get ``error.html``; the API and scripts asking for JSON get
``{"ok": false, "code", "message"}``. A database outage reaches us as the service error
kind "unavailable" (``as_service_error``), so this module knows nothing about storage.
"""

from __future__ import annotations

import logging

from quart import Quart, Response, jsonify, render_template, request
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from streamzy.guards.context import REQUEST_ID_KEY
from streamzy.guards.validation import InputError
from streamzy.services.errors import ServiceError, as_service_error
from streamzy.web.current import wants_json

log = logging.getLogger("streamzy.web")
UNAVAILABLE_RETRY_AFTER = "5"

_CODES = {400: "bad_request", 401: "not_signed_in", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
          429: "rate_limited", 503: "unavailable"}
_MESSAGES = {400: "The request could not be understood.", 404: "There is nothing here.",
             405: "That method is not allowed here.", 413: "The request is too large.",
             415: "Send this as a form (or JSON where the API says so).",
             429: "Too many requests. Wait a little and try again.",
             503: "This is temporarily unavailable. Try again in a few seconds."}
_KIND_STATUS = {"not_found": 404, "conflict": 409, "forbidden": 403, "invalid": 400,
                "unavailable": 503, "too_large": 413, "unsupported": 415}


async def error_response(status: int, code: str, message: str,
                         headers: dict[str, str] | None = None) -> Response:
    """An error page, or a JSON error for the API and for clients that ask for JSON."""
    if wants_json():
        response = jsonify({"ok": False, "code": code, "message": message})
    else:
        body = await render_template("error.html", status=status, code=code, message=message,
                                     request_id=request.scope.get(REQUEST_ID_KEY, ""))
        response = Response(body, mimetype="text/html")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {}
    if isinstance(error, RateLimitExceeded | ServiceUnavailable) and error.retry_after:
        headers["Retry-After"] = str(error.retry_after)
    return await error_response(status, _CODES.get(status, "error"),
                                _MESSAGES.get(status, "The request failed."), headers)


async def handle_input_error(error: InputError) -> Response:
    detail = "; ".join(f"{k}: {v}" for k, v in error.fields.items())
    return await error_response(400, error.code, f"{error.message} {detail}".strip())


async def handle_service_error(error: ServiceError) -> Response:
    headers = {"Retry-After": UNAVAILABLE_RETRY_AFTER} if error.kind == "unavailable" else None
    return await error_response(_KIND_STATUS.get(error.kind, 400), error.code, error.message,
                                headers)


async def handle_unexpected(error: Exception) -> Response:
    known = as_service_error(error)
    if known is not None:
        if known.kind == "unavailable":
            log.warning("database unavailable on %s %s: %s", request.method, request.path,
                        type(error).__name__)
        return await handle_service_error(known)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return await error_response(500, "internal_error",
                                "Something went wrong on our side. It has been logged.")


def install(app: Quart) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)  # type: ignore[arg-type]
    app.register_error_handler(InputError, handle_input_error)  # type: ignore[arg-type]
    app.register_error_handler(ServiceError, handle_service_error)  # type: ignore[arg-type]
    app.register_error_handler(Exception, handle_unexpected)
