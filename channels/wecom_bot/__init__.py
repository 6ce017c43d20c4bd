"""WeCom AI bot (智能机器人) channel: its long connection in, replies streamed into the chat."""

from channels.wecom_bot.adapter import WeComBotAdapter

__all__ = ["WeComBotAdapter"]
