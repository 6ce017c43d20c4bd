"""The WeChat channel runs the adapter conformance kit in plaintext and in safe mode, on both backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import pytest

from botframework.testing import ChannelHarness, ConformanceSuite, RecordedCase
from channels.wechat.crypto import MsgCrypt, plain_signature
from channels.wechat.events import parse_message
from tests.channels.wecom.harness import AES_KEY, CallbackHarness, channel_limit, recorded_cases
from tests.fakes.wechat_api import FakeWeChat
from tests.fakes.wecom_api import FakeTencentApi, encrypted_callback, text_message

APP_ID = "wx5823bf96d3bd56c7"
ORIGINAL_ID = "gh_3a9f2c81d4e7"
TOKEN = "QDG6eK"
Mode = Literal["plaintext", "aes"]


class WeChatHarness(CallbackHarness):
    channel: ClassVar[str] = "wechat"
    reply_field: ClassVar[str] = "text"
    limit = channel_limit("wechat")

    def __init__(self, mode: Mode) -> None:
        super().__init__()
        self.mode = mode

    def make_fake(self) -> FakeTencentApi:
        return FakeWeChat()

    def channel_config(self) -> Mapping[str, Any]:
        config = {
            "app_id": APP_ID,
            "app_secret": "wechat-app-secret",
            "token": TOKEN,
            "api_base_url": self.fake.base_url,
        }
        if self.mode == "aes":
            config["encoding_aes_key"] = AES_KEY
        return config

    def message(self, *, user: str, text: str, msg_id: int, create_time: int) -> str:
        return text_message(to_user=ORIGINAL_ID, from_user=user, text=text, msg_id=msg_id, create_time=create_time)

    def signed(self, plaintext: str, *, timestamp: str, nonce: str, forged: bool) -> tuple[dict[str, str], bytes]:
        token = "not-the-token" if forged else TOKEN
        query = {"signature": plain_signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if self.mode == "plaintext":
            return query, plaintext.encode("utf-8")
        crypt = MsgCrypt(token=token, encoding_aes_key=AES_KEY, receive_id=APP_ID)
        signed, body = encrypted_callback(crypt, plaintext, to_user=ORIGINAL_ID, timestamp=timestamp, nonce=nonce)
        return {**query, **signed, "encrypt_type": "aes"}, body

    def recorded_cases(self) -> Sequence[RecordedCase]:
        return recorded_cases("wechat", parse_message)


class TestWeChatConformance(ConformanceSuite):
    @pytest.fixture(params=["plaintext", "aes"])
    def harness(self, request: pytest.FixtureRequest) -> ChannelHarness:
        mode: Mode = request.param
        return WeChatHarness(mode)

    @pytest.fixture
    def bot_db_url(self, db_url: str) -> str:
        return db_url
