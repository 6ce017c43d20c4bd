"""Recorded Feishu v2 payloads -> Turns (channels.feishu.events), and the edge cases around them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from botframework.errors import PayloadError
from channels.feishu.events import parse_event, post_to_text

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feishu"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
BOT = EXPECTED["bot_open_id"]


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return payload


@pytest.mark.parametrize("name", sorted(EXPECTED["cases"]))
def test_recorded_payload(name: str) -> None:
    want = EXPECTED["cases"][name]["turn"]
    turn = parse_event(load(name), tenant="acme", bot_open_id=BOT)
    if want is None:
        assert turn is None
        return
    assert turn is not None
    assert (turn.tenant, turn.channel) == ("acme", "feishu")
    for key, value in want.items():
        assert getattr(turn, key) == value, key


def test_received_at_is_the_header_create_time() -> None:
    turn = parse_event(load("p2p_text"), tenant="acme", bot_open_id=BOT)
    assert turn is not None
    assert turn.received_at == datetime(2024, 11, 12, 8, 43, 20, 123000, tzinfo=UTC)


def test_unknown_bot_id_falls_back_to_mentioned_type() -> None:
    payload = load("group_mention")
    assert parse_event(payload, tenant="acme", bot_open_id=None) is None  # cannot tell: stay quiet
    payload["event"]["message"]["mentions"][0]["mentioned_type"] = "bot"
    turn = parse_event(payload, tenant="acme", bot_open_id=None)
    assert turn is not None and turn.text == "summarise yesterday's incidents"


def test_another_bot_mentioned_is_not_us() -> None:
    payload = load("group_mention")
    turn = parse_event(payload, tenant="acme", bot_open_id="ou_someone_else")
    assert turn is None


def test_placeholders_do_not_match_by_prefix() -> None:
    payload = load("group_mention")
    message = payload["event"]["message"]
    mentions = [
        {"key": f"@_user_{n}", "id": {"open_id": f"ou_person{n}"}, "name": f"P{n}", "tenant_key": "t"}
        for n in range(2, 11)
    ]
    message["mentions"].extend(mentions)
    message["content"] = json.dumps({"text": "@_user_1 ping @_user_10 and @_user_2"})
    turn = parse_event(payload, tenant="acme", bot_open_id=BOT)
    assert turn is not None and turn.text == "ping @P10 and @P2"


def test_p2p_thread_stays_one_conversation_but_replies_in_thread() -> None:
    payload = load("p2p_text")
    payload["event"]["message"].update(root_id="om_root1", parent_id="om_root1", thread_id="omt_x")
    turn = parse_event(payload, tenant="acme", bot_open_id=BOT)
    assert turn is not None
    assert turn.conversation_key == payload["event"]["message"]["chat_id"]
    assert turn.reply_target["reply_in_thread"] is True


def test_post_wrapped_in_a_locale_is_read() -> None:
    content = {"zh_cn": {"title": "标题", "content": [[{"tag": "text", "text": "你好"}]]}}
    assert post_to_text(content, {}) == "标题\n你好"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("header", "event_id"), None),
        (("event", "message", "chat_id"), ""),
        (("event", "sender", "sender_id"), {}),
        (("event", "message", "content"), "not json"),
        (("event", "message"), "garbage"),
    ],
)
def test_malformed_message_raises_payload_error(path: tuple[str, ...], value: object) -> None:
    payload = copy.deepcopy(load("p2p_text"))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PayloadError) as caught:
        parse_event(payload, tenant="acme", bot_open_id=BOT)
    assert "feishu" in str(caught.value)


def test_non_v2_payload_is_ignored() -> None:
    assert parse_event({"uuid": "x", "event": {"type": "message"}, "token": "t"}, tenant="a", bot_open_id=BOT) is None
    assert parse_event(load("p2p_text") | {"schema": "1.0"}, tenant="a", bot_open_id=BOT) is None
