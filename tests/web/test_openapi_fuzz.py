"""schemathesis against the real server: generated requests from /openapi.json, every answer
checked against the document (no 5xx, documented status, content type, headers, schema).

Bounded and deterministic: MAX_EXAMPLES per operation, derandomized Hypothesis with no
example database, requests only to the test server on 127.0.0.1. Marked ``slow``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from streamzy.guards.context import SYSTEM
from tests.conftest import LiveServer
from tests.realtime.helpers import make_room

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture
def server_settings() -> dict[str, Any]:
    # Budgets large enough that the fuzzer explores the API rather than its 429s.
    return {"rate_api": "100000/h", "rate_bot_messages": "100000/m", "rate_pages": "100000/m"}


def fuzz(document: dict[str, Any], base_url: str, token: str) -> dict[str, str]:
    """Run every operation; returns {operation: first failure} (empty when all pass)."""
    assert base_url.startswith("http://127.0.0.1:")
    schema = schemathesis.openapi.from_dict(document)
    failures: dict[str, str] = {}
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None,
                             deadline=None, phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=10)
            answer = f"{case.operation.label} -> {response.status_code}"
            seen[answer] = seen.get(answer, 0) + 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # a check failed: keep the first report per operation
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    print("answers seen:", dict(sorted(seen.items())))  # shown with -s or on failure
    assert seen, "schemathesis generated no request"
    return failures


async def test_the_api_conforms_to_its_openapi_document(server: LiveServer) -> None:
    room = await make_room(server, "general")
    admin = await server.services.accounts.by_username("roomadmin")
    _, token = await server.services.bots.create(admin.id, "fuzzer", "Fuzzer", [room], SYSTEM)
    async with server.client() as http:
        document = (await http.get("/openapi.json")).json()
    failures = await asyncio.to_thread(fuzz, document, server.url, token)
    assert failures == {}
