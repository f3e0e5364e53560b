"""Search over the rooms one belongs to: ``GET /search`` (the browser's search box, JSON)
and ``GET /api/v1/search`` (bots), one use case (services/search.py) behind both.

The query is content: it is passed to the service and never logged or audited here.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from pydantic import StringConstraints
from quart import Blueprint, Response, g, jsonify

from streamzy import wire
from streamzy.guards.validation import StrictModel
from streamzy.services.search import Search, SearchPage
from streamzy.web.current import session
from streamzy.web.parsing import query_model
from streamzy.web.policy import bot_token, limited, signed_in

Digits = Annotated[str, StringConstraints(max_length=18, pattern=r"^\d*$")]


class SearchQuery(StrictModel):
    # Length, emptiness and control characters are the service's to refuse, with its codes.
    q: Annotated[str, StringConstraints(max_length=4096)] = ""
    room: Annotated[str, StringConstraints(max_length=64)] = ""
    before: Digits = ""
    limit: Annotated[str, StringConstraints(max_length=3, pattern=r"^\d*$")] = ""


def page_json(page: SearchPage) -> dict[str, Any]:
    return {"ok": True, "next_before": page.next_before, "results": [
        {"id": hit.message_id, "seq": hit.seq,
         "room": {"id": hit.room_id, "name": hit.room_name, "kind": hit.room_kind},
         "sender": None if hit.sender is None else wire.person(hit.sender),
         "created_at": hit.created_at.isoformat(), "snippet": hit.snippet,
         "url": f"/rooms/{quote(hit.room_name, safe='')}?at={hit.seq}"}
        for hit in page.hits]}


async def _answer(search: Search, user_id: int) -> Response:
    query = query_model(SearchQuery)
    page = await search.search(user_id, query.q, room=query.room or None,
                               before=int(query.before) if query.before else None,
                               limit=int(query.limit) if query.limit else 20)
    return jsonify(page_json(page))


def blueprint(*, search: Search) -> Blueprint:
    bp = Blueprint("search", __name__)

    @bp.get("/search")
    @signed_in
    @limited("search")
    async def search_json() -> Response:
        return await _answer(search, session().user_id)

    @bp.get("/api/v1/search")
    @bot_token
    @limited("api", "search")
    async def search_api() -> Response:
        return await _answer(search, g.bot.user_id)

    return bp
