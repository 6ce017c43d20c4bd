"""Recorded Slack payloads -> Turn (or ignored), through channels.slack.events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from botframework.errors import PayloadError
from channels.slack.events import bot_user_from, parse_event

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "slack"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
CASES = sorted(EXPECTED["cases"])


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def test_every_fixture_has_an_expectation() -> None:
    files = {p.stem for p in FIXTURES.glob("*.json")} - {"expected"}
    assert files == set(CASES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("knows_bot", [True, False], ids=["auth.test-known", "from-authorizations"])
def test_fixture_parses_to_expected_turn(name: str, knows_bot: bool) -> None:
    case = EXPECTED["cases"][name]
    bot = EXPECTED["bot_user_id"] if knows_bot else None
    parsed = parse_event(load(name), tenant=EXPECTED["tenant"], bot_user_id=bot)
    if case["turn"] is None:
        assert parsed is None
        return
    assert parsed is not None
    turn = parsed.turn
    got = {
        "event_id": turn.event_id,
        "conversation_key": turn.conversation_key,
        "user_id": turn.user_id,
        "text": turn.text,
        "reply_target": dict(turn.reply_target),
    }
    assert got == case["turn"]
    assert (turn.tenant, turn.channel) == ("acme", "slack")
    assert parsed.needs_thread_membership is case["needs_thread_membership"]
    json.dumps(dict(turn.reply_target))  # persisted by the core: must be JSON


def test_received_at_comes_from_event_time() -> None:
    parsed = parse_event(load("app_mention"), tenant="acme", bot_user_id=None)
    assert parsed is not None
    assert parsed.turn.received_at.timestamp() == 1731400000


def test_bot_user_from_authorizations() -> None:
    assert bot_user_from(load("message_im")) == "U07BOT1234"
    assert bot_user_from({"authorizations": [{"user_id": "U1", "is_bot": False}]}) is None


def test_mention_with_display_name_is_stripped() -> None:
    body = load("app_mention")
    body["event"]["text"] = "<@U07BOT1234|helper>   deploy now"
    parsed = parse_event(body, tenant="acme", bot_user_id="U07BOT1234")
    assert parsed is not None and parsed.turn.text == "deploy now"


def test_other_mentions_in_text_are_kept() -> None:
    body = load("app_mention")
    body["event"]["text"] = "<@U07BOT1234> ask <@U0SOMEONE> about it"
    parsed = parse_event(body, tenant="acme", bot_user_id="U07BOT1234")
    assert parsed is not None and parsed.turn.text == "ask <@U0SOMEONE> about it"


def test_malformed_event_raises_payload_error() -> None:
    body = load("app_mention")
    del body["event_id"]
    with pytest.raises(PayloadError, match="event_id=None"):
        parse_event(body, tenant="acme", bot_user_id=None)
    with pytest.raises(PayloadError, match="without an event object"):
        parse_event({"type": "event_callback"}, tenant="acme", bot_user_id=None)
