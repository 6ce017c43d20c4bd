"""Recorded WeChat Official Account messages -> Turn (or ignored); the plaintext-mode signature."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from botframework.errors import SignatureError
from channels.wechat.crypto import plain_signature, verify_plain_signature
from channels.wechat.events import parse_message, parse_xml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wechat"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASES = sorted(EXPECTED["cases"])


def test_every_fixture_has_an_expectation() -> None:
    assert {p.stem for p in FIXTURES.glob("*.xml")} == set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_fixture_parses_to_expected_turn(name: str) -> None:
    want = EXPECTED["cases"][name]
    turn = parse_message(parse_xml((FIXTURES / f"{name}.xml").read_bytes()), tenant="acme")
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
    assert (turn.tenant, turn.channel) == ("acme", "wechat")


def test_plain_signature_is_sha1_of_the_sorted_parts() -> None:
    # Computed from the spec: sort token, timestamp, nonce as strings, concatenate, SHA1.
    expected = hashlib.sha1("".join(sorted(["QDG6eK", "1409659589", "263014780"])).encode()).hexdigest()
    assert plain_signature("QDG6eK", "1409659589", "263014780") == expected
    verify_plain_signature(token="QDG6eK", signature=expected, timestamp="1409659589", nonce="263014780")


@pytest.mark.parametrize(
    ("signature", "timestamp", "nonce"),
    [("0" * 40, "1", "2"), ("", "1", "2"), (plain_signature("QDG6eK", "", ""), "", ""), ("签名", "1", "2")],
    ids=["wrong", "missing", "empty-parts", "non-ascii"],
)
def test_bad_plain_signatures_are_rejected(signature: str, timestamp: str, nonce: str) -> None:
    with pytest.raises(SignatureError):
        verify_plain_signature(token="QDG6eK", signature=signature, timestamp=timestamp, nonce=nonce)


def test_an_image_reaches_the_model_by_its_pic_url() -> None:
    turn = parse_message(parse_xml((FIXTURES / "image.xml").read_bytes()), tenant="acme")
    assert turn is not None and turn.channel == "wechat" and turn.text == "[image]"
    assert [i.url for i in turn.images] == ["http://mmbiz.qpic.cn/mmbiz_jpg/abc123/0"]
