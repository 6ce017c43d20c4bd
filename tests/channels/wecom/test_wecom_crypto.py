"""WXBizMsgCrypt: Tencent's own sample vectors, an independently computed vector, strict padding."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from botframework.errors import SignatureError
from channels.wecom.crypto import MsgCrypt, aes_key, pkcs7_pad, pkcs7_unpad, sha1_signature
from channels.wecom.events import parse_xml

VECTOR = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "wecom" / "official_vector.json").read_text())


def official() -> MsgCrypt:
    return MsgCrypt(token=VECTOR["token"], encoding_aes_key=VECTOR["encoding_aes_key"], receive_id=VECTOR["receive_id"])


def test_official_url_verification_vector() -> None:
    get = VECTOR["verify_url"]
    echo = official().open(
        signature=get["msg_signature"], timestamp=get["timestamp"], nonce=get["nonce"], encrypted=get["echostr"]
    )
    assert echo.decode() == get["plaintext"]


def test_official_message_vector_needs_32_byte_unpadding() -> None:
    post = VECTOR["message"]
    encrypted = parse_xml(post["body"])["Encrypt"]
    plain = official().open(
        signature=post["msg_signature"], timestamp=post["timestamp"], nonce=post["nonce"], encrypted=encrypted
    )
    assert plain.decode() == post["plaintext"]
    # The padding of this genuine message is 30 bytes: more than a 16-byte PKCS#7 unpadder allows.
    key = aes_key(VECTOR["encoding_aes_key"])
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    raw = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    assert raw[-1] == 30


def test_an_independently_computed_vector_matches() -> None:
    """Built here from the spec with hashlib and raw AES, not with the module under test."""
    token, key_text, corp = "hJH1f3tzBXFgm", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
    prefix = b"0123456789abcdef"
    message = "<xml><Content><![CDATA[你好]]></Content></xml>".encode()
    key = base64.b64decode(key_text + "=")
    plain = prefix + struct.pack(">I", len(message)) + message + corp.encode()
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    expected = base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()
    signature = hashlib.sha1("".join(sorted([token, "1731400000", "5555", expected])).encode()).hexdigest()

    crypt = MsgCrypt(token=token, encoding_aes_key=key_text, receive_id=corp)
    assert crypt.encrypt(message, random_prefix=prefix) == expected
    assert crypt.signature("1731400000", "5555", expected) == signature
    assert crypt.open(signature=signature, timestamp="1731400000", nonce="5555", encrypted=expected) == message


def test_sha1_signature_sorts_its_parts() -> None:
    assert sha1_signature("b", "a", "c") == hashlib.sha1(b"abc").hexdigest()


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 100])
def test_padding_round_trips_to_32_byte_blocks(size: int) -> None:
    data = b"y" * size
    padded = pkcs7_pad(data)
    assert len(padded) % 32 == 0 and 1 <= len(padded) - size <= 32
    assert pkcs7_unpad(padded) == data


@pytest.mark.parametrize(
    "padded",
    [
        b"",
        b"a" * 31 + b"\x01" + b"b",  # not a multiple of 32
        b"a" * 31 + b"\x00",  # pad 0
        b"a" * 32 + b"\x21" * 32,  # pad 33 > block
        b"a" * 29 + b"\x02\x03\x03",  # inconsistent pad bytes
    ],
    ids=["empty", "unaligned", "zero", "too-big", "inconsistent"],
)
def test_strict_unpadding_rejects(padded: bytes) -> None:
    with pytest.raises(SignatureError):
        pkcs7_unpad(padded)


def test_a_wrong_receiveid_is_rejected() -> None:
    other = MsgCrypt(token="t", encoding_aes_key=VECTOR["encoding_aes_key"], receive_id="ww-another-corp")
    encrypted = other.encrypt(b"<xml/>")
    with pytest.raises(SignatureError, match="receiveid"):
        official().decrypt(encrypted)


def test_a_tampered_ciphertext_or_signature_is_rejected() -> None:
    get = VECTOR["verify_url"]
    crypt = official()
    with pytest.raises(SignatureError):
        crypt.open(signature="0" * 40, timestamp=get["timestamp"], nonce=get["nonce"], encrypted=get["echostr"])
    with pytest.raises(SignatureError):
        crypt.open(signature=get["msg_signature"], timestamp="1409659590", nonce=get["nonce"], encrypted=get["echostr"])
    with pytest.raises(SignatureError):
        crypt.open(signature="", timestamp=get["timestamp"], nonce=get["nonce"], encrypted=get["echostr"])


@pytest.mark.parametrize(
    "encrypted",
    [
        "not base64!",
        VECTOR["verify_url"]["echostr"].replace("+", " "),  # what a naive query parser hands over
        base64.b64encode(b"x" * 48).decode(),  # not a multiple of 32 bytes
        base64.b64encode(b"x" * 64).decode(),  # decrypts to garbage padding
        "密文",
    ],
    ids=["garbage", "plus-as-space", "unaligned", "garbage-padding", "non-ascii"],
)
def test_undecryptable_input_is_a_signature_error(encrypted: str) -> None:
    with pytest.raises(SignatureError):
        official().decrypt(encrypted)


def test_a_length_field_beyond_the_payload_is_rejected() -> None:
    crypt = official()
    key = aes_key(VECTOR["encoding_aes_key"])
    plain = pkcs7_pad(b"r" * 16 + struct.pack(">I", 10_000) + b"short" + VECTOR["receive_id"].encode())
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypted = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
    with pytest.raises(SignatureError, match="length"):
        crypt.decrypt(encrypted)


@pytest.mark.parametrize("key", ["short", "a" * 44, "!" * 43])
def test_invalid_encoding_aes_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        aes_key(key)


def test_the_random_prefix_makes_ciphertexts_differ() -> None:
    crypt = official()
    first, second = crypt.encrypt(b"same"), crypt.encrypt(b"same")
    assert first != second
    assert crypt.decrypt(first) == crypt.decrypt(second) == b"same"
