"""Turn a request body into a validated model, or a clear 4xx."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart import request
from werkzeug.exceptions import UnsupportedMediaType

from streamzy.guards.validation import InputError, form_to_dict, parse


async def form_model[M: BaseModel](model: type[M]) -> M:
    """Validate the posted form; raises InputError (rendered as 400/422 by the route)."""
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UnsupportedMediaType()
    form = await request.form
    if await request.files:
        raise InputError("invalid_input", message="Files are not accepted here.")
    return parse(model, form_to_dict(form))


async def json_model[M: BaseModel](model: type[M]) -> M:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    data: Any = await request.get_json(silent=True)
    if data is None:
        raise InputError("invalid_json", message="The body is not valid JSON.")
    return parse(model, data)


def query_model[M: BaseModel](model: type[M]) -> M:
    return parse(model, form_to_dict(request.args, drop=()))
