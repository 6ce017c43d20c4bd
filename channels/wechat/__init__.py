"""WeChat Official Account (公众号) channel: XML callback (plaintext or safe mode) in, customer-service API out."""

from channels.wechat.adapter import WeChatAdapter

__all__ = ["WeChatAdapter"]
