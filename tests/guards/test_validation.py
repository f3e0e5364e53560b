"""Error texts of shared input validation: what a client reads when its input is refused."""

from __future__ import annotations

import pytest

from streamzy.guards.validation import InputError, parse
from streamzy.realtime.schemas import SendMessage


def refusal(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(InputError) as caught:
        parse(SendMessage, data)
    return caught.value.fields


def test_a_pattern_is_quoted_with_its_case_intact() -> None:
    fields = refusal({"room": 1, "client_msg_id": "bad id with spaces", "text": "hi"})
    message = fields["client_msg_id"]
    assert "^[A-Za-z0-9_.:-]+$" in message, message  # not ^[a-za-z0-9_.:-]+$
    assert message[0].isupper() and message.endswith(".")


def test_value_errors_start_with_a_capital_and_keep_the_rest() -> None:
    fields = refusal({"room": "", "client_msg_id": "ok", "text": "hi"})
    assert fields["room"].startswith("Use a room id (1 to ")
    assert fields["room"].endswith("no control characters).")


def test_bounds_are_named() -> None:
    assert refusal({"room": 1, "client_msg_id": "ok", "text": "hi", "x": 1}) == {
        "x": "Unexpected field."}
    from streamzy.realtime.schemas import MarkRead
    with pytest.raises(InputError) as caught:
        parse(MarkRead, {"room": 1, "seq": 2**63})
    assert caught.value.fields == {"seq": f"Use at most {2**63 - 1}."}


def test_lone_surrogates_are_invalid_input_naming_the_field() -> None:
    fields = refusal({"room": "gen\ud800", "client_msg_id": "ok", "text": "hi"})
    assert fields == {"room": "Not valid Unicode text (a lone surrogate)."}
    fields = refusal({"room": 1, "client_msg_id": "ok", "text": "\ud83d",
                      "deep": [[{"\udfff": 1}]]})
    assert set(fields) == {"text", "deep"}
    assert parse(SendMessage, {"room": 1, "client_msg_id": "ok",
                               "text": "\U0001f642 paired is fine"}).text.startswith("\U0001f642")
