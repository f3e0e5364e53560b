"""Input validation shared by forms, JSON bodies and socket events (pydantic)."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

# C0/C1 controls and the invisible bidi overrides used to disguise text; tab and newline
# are allowed only where a field says so (multi-line text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_SINGLE_LINE = re.compile(r"[\t\n\r]")


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
    if _CONTROL.search(value) or _CONTROL_SINGLE_LINE.search(value):
        raise ValueError("must not contain control characters")
    return value


def clean_text(value: str) -> str:
    """Multi-line text: newlines and tabs allowed, other control characters refused."""
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()
    if _CONTROL.search(value) or "\r" in value:
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
    if kind == "missing":
        return "This field is required."
    if kind == "extra_forbidden":
        return "Unexpected field."
    if kind.startswith("string_type") or kind.endswith("_type"):
        return "Wrong type."
    message = str(error.get("msg", "Invalid value."))
    return message.removeprefix("Value error, ").rstrip(".").capitalize() + "."


def parse[M: BaseModel](model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model`` or raise InputError with per-field messages."""
    if not isinstance(data, dict):
        raise InputError("invalid_payload", message="Expected an object.")
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
