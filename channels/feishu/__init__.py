"""Feishu/Lark channel (event subscription v2 webhook or long connection) on lark-oapi."""

from channels.feishu.adapter import FeishuAdapter

__all__ = ["FeishuAdapter"]
