"""WeChat Official Account (公众号) channel: ``GET|POST /t/{tenant}/wechat/callback``.

Two modes, chosen by the config: without ``encoding_aes_key`` plaintext mode (``signature`` over
token, timestamp, nonce; the XML body in clear), with it safe mode (``encrypt_type=aes``: the
WXBizMsgCrypt scheme of :mod:`channels.wecom.crypto`, ``msg_signature``, receiveid = AppID).
URL verification GETs use the plain ``signature`` in both modes and echo ``echostr``.

In safe mode a POST that is not encrypted is refused (401): the plain signature does not cover the
body, so accepting it would let a replayed signature carry any message. In plaintext mode that is
what the replay check stops (:mod:`botframework.replay`): the timestamp must be within
``replay_window_s`` and each (timestamp, nonce) is bound to the first body it came with. Safe mode
is still the better choice.

With ``reply_mode: api`` (the default) messages are acknowledged with ``success`` once ingested and
the reply goes later through the customer-service API (:mod:`.api`). With ``reply_mode: passive``
the reply travels in the callback response instead (:mod:`.passive`: WeChat's tries, answers slower
than all of them kept for the user's next message); the core then holds replies and never calls
the API. Either way a message is answered exactly once, never by both paths.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from aiohttp import web

from botframework.channel import ChannelRuntime
from botframework.errors import SignatureError
from botframework.render import to_plain
from botframework.turn import Turn
from channels.wechat.api import WeChatApi
from channels.wechat.config import WeChatChannelConfig
from channels.wechat.crypto import MsgCrypt, verify_plain_signature
from channels.wechat.events import CHANNEL, parse_message
from channels.wechat.passive import PassiveReplies
from channels.wechat.render import LIMIT, encrypted_reply_xml, text_reply_xml
from channels.wecom.adapter import CallbackAdapter, encrypted_field

__all__ = ["WeChatAdapter"]


class WeChatAdapter(CallbackAdapter[WeChatChannelConfig]):
    """One Official Account of one tenant."""

    name = CHANNEL
    config_model = WeChatChannelConfig
    message_limit = LIMIT
    ack_body = "success"

    def __init__(self, *, tenant: str, config: WeChatChannelConfig, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.settings = config
        self._token = config.token.get_secret_value()
        self.crypt: MsgCrypt | None = None
        if config.encoding_aes_key is not None:
            self.crypt = MsgCrypt(
                token=self._token,
                encoding_aes_key=config.encoding_aes_key.get_secret_value(),
                receive_id=config.app_id,
            )
        self.api: WeChatApi = WeChatApi(
            app_id=config.app_id, app_secret=config.app_secret.get_secret_value(), base_url=config.api_base_url
        )
        self.passive: PassiveReplies | None = None
        if config.reply_mode == "passive":
            self.passive = PassiveReplies(
                runtime=runtime,
                tenant=tenant,
                channel=self.name,
                render=self.render,
                wait_s=config.passive_wait_s,
                tries=config.passive_tries,
                continue_hint=config.continue_hint,
            )

    @property
    def holds_replies(self) -> bool:
        return self.passive is not None

    @property
    def replay_window_s(self) -> int:
        return self.settings.replay_window_s

    def _verify_plain(self, query: Mapping[str, str]) -> None:
        verify_plain_signature(
            token=self._token,
            signature=query.get("signature", ""),
            timestamp=query.get("timestamp", ""),
            nonce=query.get("nonce", ""),
        )

    def verify_url(self, query: Mapping[str, str]) -> str:
        self._verify_plain(query)
        echo = query.get("echostr", "")
        if not echo:
            raise SignatureError("URL verification without echostr")
        return echo

    def open_message(self, query: Mapping[str, str], raw: bytes) -> bytes:
        encrypted = query.get("encrypt_type", "raw") == "aes"
        if self.crypt is None:
            if encrypted:
                raise SignatureError("encrypted message but no encoding_aes_key is configured (plaintext mode)")
            self._verify_plain(query)
            return raw
        if not encrypted:
            raise SignatureError("plaintext message refused in safe mode (encrypt_type is not aes)")
        return self.crypt.open_callback(query, encrypted_field(raw))

    def parse(self, fields: Mapping[str, str]) -> Turn | None:
        return parse_message(fields, tenant=self.tenant)

    def render(self, markdown: str) -> str:
        return to_plain(markdown)

    async def respond(self, fields: Mapping[str, str], turn: Turn | None) -> web.StreamResponse:
        if self.passive is None or turn is None:
            return await super().respond(fields, turn)
        text = await self.passive.answer(turn)
        if text is None:
            return web.Response(text=self.ack_body, content_type="text/plain")
        reply = text_reply_xml(
            to_user=fields["FromUserName"],
            from_user=fields.get("ToUserName", ""),
            content=text,
            create_time=int(time.time()),
        )
        if self.crypt is not None:
            timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
            encrypted = self.crypt.encrypt(reply.encode("utf-8"))
            reply = encrypted_reply_xml(
                encrypted=encrypted,
                signature=self.crypt.signature(timestamp, nonce, encrypted),
                timestamp=timestamp,
                nonce=nonce,
            )
        return web.Response(text=reply, content_type="application/xml")

    async def send(self, touser: str, content: str, *, resend_after_s: float | None = None) -> None:
        """The customer-service API has no dedupe: a resend after a crash mid-send may repeat a part."""
        await self.api.send_text(touser, content)
