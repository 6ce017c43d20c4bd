"""Recorded WeCom messages -> Turn (or ignored), and safe XML parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from botframework.errors import PayloadError
from channels.wecom.events import event_id, parse_message, parse_xml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wecom"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASES = sorted(EXPECTED["cases"])


def load(name: str) -> dict[str, str]:
    return parse_xml((FIXTURES / f"{name}.xml").read_bytes())


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.xml")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_parses_to_expected_turn(name: str) -> None:
    want = EXPECTED["cases"][name]
    turn = parse_message(load(name), tenant="acme")
    if want is None:
        assert turn is None
        return
    assert turn is not None
    got = {
        "event_id": turn.event_id,
        "conversation_key": turn.conversation_key,
        "user_id": turn.user_id,
        "text": turn.text,
        "reply_target": dict(turn.reply_target),
        "received_at": int(turn.received_at.timestamp()),
    }
    assert got == want
    assert (turn.tenant, turn.channel) == ("acme", "wecom")
    json.dumps(dict(turn.reply_target))


def test_cdata_keeps_markup_characters_literally() -> None:
    assert load("text")["Content"] == "帮我总结一下今天的会议 & <next> steps"


def test_events_are_keyed_by_sender_and_create_time() -> None:
    assert event_id(load("event_click")) == "ZhangSan:1731400050"
    assert event_id(load("text")) == "7435112043720003921"


def test_a_message_without_msgid_uses_the_event_key() -> None:
    fields = {**load("text"), "MsgId": ""}
    turn = parse_message(fields, tenant="acme")
    assert turn is not None and turn.event_id == "ZhangSan:1731400000"
    assert turn.received_at == datetime.fromtimestamp(1731400000, UTC)


@pytest.mark.parametrize(
    "raw",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><Content>&x;</Content></xml>',
        b'<!DOCTYPE xml SYSTEM "http://attacker.example/evil.dtd"><xml/>',
        b'<!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><xml><C>&b;</C></xml>',
    ],
    ids=["entity", "external-dtd", "billion-laughs"],
)
def test_doctype_and_entities_are_rejected(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="DTD"):
        parse_xml(raw)


@pytest.mark.parametrize("raw", [b"", b"not xml", b"<root><a>1</a></root>", b"<xml><a>1</xml>"])
def test_malformed_xml_is_a_payload_error(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_xml(raw)


@pytest.mark.parametrize("missing", ["FromUserName", "CreateTime", "MsgType"])
def test_a_message_without_required_fields_is_a_payload_error(missing: str) -> None:
    fields = load("text")
    del fields[missing]
    with pytest.raises(PayloadError, match=missing):
        parse_message(fields, tenant="acme")


def test_a_non_numeric_create_time_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="CreateTime"):
        parse_message({**load("text"), "CreateTime": "yesterday"}, tenant="acme")


def test_an_image_reaches_the_model_by_its_cdn_url_with_a_text_fallback() -> None:
    turn = parse_message(parse_xml((FIXTURES / "image.xml").read_bytes()), tenant="acme")
    assert turn is not None and turn.text == "[image]"
    picture = ("https://wework.qpic.cn/wwpic/123456_abcdef/0", "image/jpeg")
    assert [(i.url, i.media_type) for i in turn.images] == [picture]
    link = parse_message(parse_xml((FIXTURES / "link.xml").read_bytes()), tenant="acme")
    assert link is not None and link.images == ()  # a link's preview picture is not the user's image


def test_an_image_without_a_web_url_stays_a_placeholder() -> None:
    raw = (FIXTURES / "image.xml").read_text().replace("https://wework.qpic.cn/wwpic/123456_abcdef/0", "file:///etc/x")
    turn = parse_message(parse_xml(raw), tenant="acme")
    assert turn is not None and turn.text == "[image]" and turn.images == ()
