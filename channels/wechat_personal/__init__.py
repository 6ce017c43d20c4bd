"""Personal WeChat channel through Tencent's iLink bot API: QR login, long poll in, ``sendmessage`` out."""

from channels.wechat_personal.adapter import WeChatPersonalAdapter

__all__ = ["WeChatPersonalAdapter"]
