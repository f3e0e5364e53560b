"""Input validation shared by forms, JSON bodies and socket events (pydantic)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from streamzy.services.content import has_control_chars

# Ids and sequence numbers are 64-bit signed integers in the database (BIGINT): a number a
# column cannot hold is invalid input, never a driver overflow deep in a query.
INT64_MAX = 2**63 - 1
RowId = Annotated[int, Field(ge=1, le=INT64_MAX)]
Seq = Annotated[int, Field(ge=0, le=INT64_MAX)]

# A client's id for one message (its retry key), the same on every edge.
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                               pattern=r"^[A-Za-z0-9_.:-]+$")]


def _message_text(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


# An upload's public id (secrets.token_urlsafe) and the few a message may carry.
FileId = Annotated[str, StringConstraints(min_length=16, max_length=32,
                                          pattern=r"^[A-Za-z0-9_-]+$")]
Attachments = Annotated[list[FileId], Field(max_length=4)]


# Message text has one limit, the configured STREAMZY_MESSAGE_MAX_CHARS, checked by the
# message service (which names it in its `too_long` error). No schema bound besides it, not
# even StrictModel's default: what a client can send at all is bounded by the transport
# (the Engine.IO packet cap, the API's body limit).
MessageText = Annotated[str, PlainValidator(_message_text, json_schema_input_type=str)]


class InputError(ValueError):
    """Input that failed validation; ``fields`` maps field names to a human message."""

    def __init__(self, code: str, fields: dict[str, str] | None = None,
                 message: str = "The input is not valid.") -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields or {}
        self.message = message


def clean_line(value: str) -> str:
    """Single-line text: NFC-normalised, trimmed, no control characters."""
    value = unicodedata.normalize("NFC", value).strip()
    if has_control_chars(value, multiline=False):
        raise ValueError("must not contain control characters")
    return value


def clean_text(value: str) -> str:
    """Multi-line text: newlines and tabs allowed, other control characters refused."""
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()
    if has_control_chars(value):
        raise ValueError("must not contain control characters")
    return value


Line = Annotated[str, AfterValidator(clean_line)]
Text = Annotated[str, AfterValidator(clean_text)]


class StrictModel(BaseModel):
    """Unknown fields are refused; strings are never coerced from other types."""

    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=20_000)


def _describe(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in ("string_too_long", "too_long"):
        return f"Use at most {ctx.get('max_length')} characters."
    if kind in ("string_too_short", "too_short"):
        return "This field is required." if ctx.get("min_length") == 1 else \
            f"Use at least {ctx.get('min_length')} characters."
    if kind == "less_than_equal":
        return f"Use at most {ctx.get('le')}."
    if kind == "greater_than_equal":
        return f"Use at least {ctx.get('ge')}."
    if kind == "missing":
        return "This field is required."
    if kind == "extra_forbidden":
        return "Unexpected field."
    if kind.startswith("string_type") or kind.endswith("_type"):
        return "Wrong type."
    message = str(error.get("msg", "Invalid value.")).removeprefix("Value error, ").rstrip(".")
    # Upper-case the first character only: str.capitalize() lower-cases the rest, which
    # turned a quoted pattern like ^[A-Za-z0-9_.:-]+$ into a different, wrong one.
    return message[:1].upper() + message[1:] + "."


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _has_surrogate(value: Any) -> bool:
    """True if a string anywhere in ``value`` holds a lone surrogate (iterative: the
    nesting depth is the client's choice)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def parse[M: BaseModel](model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model`` or raise InputError with per-field messages."""
    if not isinstance(data, dict):
        raise InputError("invalid_payload", message="Expected an object.")
    # JSON can spell a lone surrogate (\ud800), which is no Unicode text: it cannot be
    # encoded, so it would fail deep in a query or in sealing. Refused here, for every edge.
    broken = {str(key) if not _has_surrogate(key) else "_": "Not valid Unicode text "
              "(a lone surrogate)." for key, value in data.items()
              if _has_surrogate(key) or _has_surrogate(value)}
    if broken:
        raise InputError("invalid_input", broken)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors():
            name = ".".join(str(p) for p in error.get("loc", ())) or "_"
            fields.setdefault(name, _describe(dict(error)))
        raise InputError("invalid_input", fields) from None


def form_to_dict(form: Any, *, drop: tuple[str, ...] = ("csrf_token",)) -> dict[str, str]:
    """Flatten a form MultiDict; a repeated field is an error, not a silent pick."""
    data: dict[str, str] = {}
    for key in form:
        if key in drop:
            continue
        values = form.getlist(key)
        if len(values) != 1:
            raise InputError("invalid_input", {key: "Send this field once."})
        data[key] = values[0]
    return data
