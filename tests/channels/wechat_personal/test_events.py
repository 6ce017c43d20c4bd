"""iLink messages -> Turn on recorded payloads, media references and the CDN media cipher."""

from __future__ import annotations

import base64
import json
import os

import pytest

from botframework.errors import MediaError, PayloadError
from botframework.media import parse_media_ref
from channels.wechat_personal.crypto import decrypt_media, encrypt_media, media_key
from channels.wechat_personal.events import MediaRef, parse_message
from tests.channels.wechat_personal.harness import FIXTURES, recorded_cases


@pytest.mark.parametrize("case", recorded_cases(), ids=lambda c: c.name)
def test_recorded_payloads(case: object) -> None:
    turn = case.parse()  # type: ignore[attr-defined]
    expected = case.expected  # type: ignore[attr-defined]
    if expected is None:
        assert turn is None
        return
    assert turn is not None
    for key, value in expected.items():
        assert getattr(turn, key) == value, key
    spec = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["cases"][case.name]  # type: ignore[attr-defined]
    assert len(turn.images) == spec["images"]


def test_an_image_becomes_a_reference_holding_where_it_is_and_its_key() -> None:
    message = json.loads((FIXTURES / "image.json").read_text(encoding="utf-8"))
    turn = parse_message(message, tenant="acme")
    assert turn is not None
    [image] = turn.images
    parsed = parse_media_ref(image.url)
    assert parsed is not None and parsed[0] == "wechat_personal"
    ref = MediaRef.decode(parsed[1])
    assert ref.query == "img-query-104" and ref.key_hex == bytes(range(16)).hex()


def test_an_image_with_a_key_of_the_wrong_size_keeps_the_placeholder_only() -> None:
    message = json.loads((FIXTURES / "image.json").read_text(encoding="utf-8"))
    item = message["item_list"][0]["image_item"]
    item["aeskey"] = ""
    item["media"]["aes_key"] = base64.b64encode(b"short").decode()
    turn = parse_message(message, tenant="acme")
    assert turn is not None and turn.text == "[image]" and turn.images == ()


@pytest.mark.parametrize(
    "message",
    [
        [],
        {"message_type": 1, "from_user_id": "u@im.wechat", "item_list": [{"type": 1, "text_item": {"text": "x"}}]},
        {"message_id": 5, "message_type": 1, "item_list": [{"type": 1, "text_item": {"text": "no sender"}}]},
        {"message_id": 5, "message_type": 1, "from_user_id": "u@im.wechat", "item_list": "not a list"},
    ],
    ids=["not-an-object", "no-id", "no-sender", "bad-items"],
)
def test_malformed_messages_raise_payload_error(message: object) -> None:
    with pytest.raises(PayloadError):
        parse_message(message, tenant="acme")  # type: ignore[arg-type]


def test_media_keys_in_all_three_spellings_decrypt_the_same_file() -> None:
    key = os.urandom(16)
    picture = b"\x89PNG\r\n\x1a\n" + os.urandom(1000)
    encrypted = encrypt_media(picture, key)
    assert encrypted != picture and len(encrypted) % 16 == 0
    for spelled in (
        media_key(hex_key=key.hex()),
        media_key(base64_key=base64.b64encode(key).decode()),
        media_key(base64_key=base64.b64encode(key.hex().encode()).decode()),
    ):
        assert decrypt_media(encrypted, spelled) == picture


def test_media_that_is_not_this_keys_ciphertext_is_a_media_error() -> None:
    encrypted = encrypt_media(b"hello", bytes(16))
    with pytest.raises(MediaError):
        decrypt_media(encrypted, bytes(range(16)))
    with pytest.raises(MediaError):
        decrypt_media(encrypted[:-1], bytes(16))
    with pytest.raises(MediaError):
        media_key(hex_key="not hex")
    with pytest.raises(MediaError):
        MediaRef.decode("!!not-a-ref!!")
