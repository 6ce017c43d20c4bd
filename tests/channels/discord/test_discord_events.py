"""Recorded Discord MESSAGE_CREATE payloads -> Turn (or ignored), through channels.discord.events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from botframework.errors import PayloadError
from channels.discord.events import DiscordMessage, channel_allowed, parse_message

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "discord"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
CASES = sorted(EXPECTED["cases"])


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} - {"expected"} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_parses_to_expected_turn(name: str) -> None:
    case = EXPECTED["cases"][name]
    turn = parse_message(
        DiscordMessage.from_payload(load(name)),
        tenant=EXPECTED["tenant"],
        bot_user_id=EXPECTED["bot_user_id"],
        allowed_channels=EXPECTED["allowed_channels"],
        parent_id=case.get("parent_id"),
    )
    if case["turn"] is None:
        assert turn is None
        return
    assert turn is not None
    got = {
        "event_id": turn.event_id,
        "conversation_key": turn.conversation_key,
        "user_id": turn.user_id,
        "text": turn.text,
        "reply_target": dict(turn.reply_target),
        "images": [{"url": i.url, "media_type": i.media_type} for i in turn.images],
    }
    assert got == case["turn"]
    assert (turn.tenant, turn.channel) == ("acme", "discord")
    assert turn.received_at.isoformat() == "2026-11-12T10:00:00+00:00"


def test_empty_allowlist_allows_every_guild_channel() -> None:
    message = DiscordMessage.from_payload(load("guild_mention_not_allowed_channel"))
    turn = parse_message(message, tenant="acme", bot_user_id=EXPECTED["bot_user_id"], allowed_channels=())
    assert turn is not None and turn.conversation_key == "1200000000000000002"


def test_thread_without_known_parent_is_not_allowed() -> None:
    message = DiscordMessage.from_payload(load("thread_mention"))
    assert not channel_allowed(message, allowed_channels={"1200000000000000001"}, parent_id=None)
    assert channel_allowed(message, allowed_channels={"1200000000000000003"}, parent_id=None)


def test_unknown_bot_identity_answers_nothing() -> None:
    assert parse_message(DiscordMessage.from_payload(load("dm")), tenant="acme", bot_user_id=None) is None


def test_malformed_payload_raises_payload_error() -> None:
    with pytest.raises(PayloadError, match="author"):
        DiscordMessage.from_payload({"id": "1", "channel_id": "2"})
