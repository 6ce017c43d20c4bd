"""events.parse_update on recorded Bot API updates (fixtures/expected.json names the Turn each gives)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botframework.errors import PayloadError

from bf_telegram.events import BotIdentity, TelegramTarget, parse_update

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
BOT = BotIdentity(id=EXPECTED["bot_id"], username=EXPECTED["bot_username"])


def _load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_every_fixture_has_an_expectation() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")} - {"expected"}
    assert names == set(EXPECTED["cases"])


@pytest.mark.parametrize("name", sorted(EXPECTED["cases"]))
def test_recorded_update(name: str) -> None:
    turn = parse_update(_load(name), tenant=EXPECTED["tenant"], bot=BOT)
    want = EXPECTED["cases"][name]["turn"]
    if want is None:
        assert turn is None
        return
    assert turn is not None
    assert (turn.tenant, turn.channel) == (EXPECTED["tenant"], "telegram")
    got = {key: getattr(turn, key) for key in want}
    got["reply_target"] = dict(turn.target)
    assert got == want
    TelegramTarget.model_validate(turn.target)  # what deliver() reads back


def test_redelivery_keeps_the_event_id_and_received_at() -> None:
    first = parse_update(_load("private_text"), tenant="acme", bot=BOT)
    again = parse_update(_load("private_text"), tenant="acme", bot=BOT)
    assert first is not None and again is not None
    assert (first.event_id, first.received_at) == (again.event_id, again.received_at)
    assert first.received_at.timestamp() == _load("private_text")["message"]["date"]


def test_mentions_by_username_need_the_username() -> None:
    """Before getMe answered, a mention cannot be recognized (the adapter waits for it)."""
    assert parse_update(_load("group_mention"), tenant="acme", bot=BotIdentity(id=BOT.id)) is None
    assert parse_update(_load("group_reply_to_bot"), tenant="acme", bot=BotIdentity(id=BOT.id)) is not None


def test_a_text_mention_of_the_bot_addresses_it() -> None:
    update = _load("group_plain")
    message = update["message"]
    message["text"] = "Acme Helper please summarize"
    message["entities"] = [
        {
            "offset": 0,
            "length": 11,
            "type": "text_mention",
            "user": {"id": BOT.id, "is_bot": True, "first_name": "Acme Helper"},
        }
    ]
    turn = parse_update(update, tenant="acme", bot=BOT)
    assert turn is not None and turn.text == "please summarize"


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"message": {}}, "update_id"),
        ({"update_id": "7", "message": {}}, "update_id"),
        ({"update_id": 7, "message": {"chat": {"id": 1}, "text": "x"}}, "message_id"),
        ({"update_id": 7, "message": {"message_id": 1, "chat": {"type": "private"}, "text": "x"}}, "chat.id"),
        (
            {"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"is_bot": False}, "text": "x"}},
            "sender",
        ),
    ],
)
def test_malformed_updates_raise_payload_error(update: dict[str, Any], problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_update(update, tenant="acme", bot=BOT)
