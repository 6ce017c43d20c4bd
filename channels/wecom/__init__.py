"""WeCom (企业微信) self-built app channel: encrypted XML callback in, ``message/send`` out."""

from channels.wecom.adapter import WeComAdapter

__all__ = ["WeComAdapter"]
