"""WeChat's messages: plain text (no Markdown), at most 2,048 UTF-8 bytes each, and the passive reply XML."""

from __future__ import annotations

from botframework.render import ChannelLimit

__all__ = ["LIMIT", "cdata", "encrypted_reply_xml", "text_reply_xml"]

LIMIT = ChannelLimit(2_048, "bytes")


def cdata(text: str) -> str:
    """``text`` as CDATA; a ``]]>`` inside is split across two sections so it cannot end the first."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(*, to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply: to the follower's openid, from the account's original id (``gh_...``)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType>{cdata('text')}</MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def encrypted_reply_xml(*, encrypted: str, signature: str, timestamp: str, nonce: str) -> str:
    """A safe-mode passive reply: the encrypted text reply with its ``MsgSignature``."""
    return (
        f"<xml><Encrypt>{cdata(encrypted)}</Encrypt><MsgSignature>{cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
    )
