"""Recorded Feishu v2 payloads -> Turns (channels.feishu.events), and the edge cases around them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from botframework.errors import PayloadError
from botframework.media import parse_media_ref
from channels.feishu.events import parse_event, post_images, post_to_text

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
    # Images live beside "turn" in expected.json: the conformance kit compares "turn" fields with ==.
    assert [image.url for image in turn.images] == EXPECTED["cases"][name].get("images", [])


def test_image_message_references_the_picture_by_message_and_key() -> None:
    turn = parse_event(load("p2p_image"), tenant="acme", bot_open_id=BOT)
    assert turn is not None and turn.text == "[image]"
    [image] = turn.images
    assert parse_media_ref(image.url) == (
        "feishu",
        "om_a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1/img_v2_041b28e3-5680-48c2-9af2-497ace79333g",
    )


def test_image_in_a_group_without_a_mention_is_ignored() -> None:
    payload = load("p2p_image")
    payload["event"]["message"].update(chat_type="group", chat_id="oc_5ad11d72b830411d72b836c20")
    assert parse_event(payload, tenant="acme", bot_open_id=BOT) is None


def test_image_message_without_an_image_key_is_malformed() -> None:
    payload = load("p2p_image")
    payload["event"]["message"]["content"] = json.dumps({"file_key": "file_v2_x"})
    with pytest.raises(PayloadError, match="om_a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1"):
        parse_event(payload, tenant="acme", bot_open_id=BOT)


def test_post_images_keep_their_order_once_each_and_skip_other_elements() -> None:
    content = {
        "title": "",
        "content": [
            [{"tag": "img", "image_key": "img_b"}, {"tag": "text", "text": "x", "image_key": "img_not"}],
            [{"tag": "media", "file_key": "file_v", "image_key": "img_cover"}, {"tag": "img", "image_key": "img_a"}],
            [{"tag": "img", "image_key": "img_b"}, {"tag": "img"}, "junk"],
        ],
    }
    assert post_images(content) == ["img_b", "img_a"]


def test_post_of_only_an_image_is_a_turn() -> None:
    payload = load("post_p2p")
    content = {"title": "", "content": [[{"tag": "img", "image_key": "img_only"}]]}
    payload["event"]["message"]["content"] = json.dumps(content)
    turn = parse_event(payload, tenant="acme", bot_open_id=BOT)
    assert turn is not None and turn.text == "[image]"
    assert [i.url for i in turn.images] == ["media:feishu:om_d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8/img_only"]


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
