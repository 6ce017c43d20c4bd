"""Telegram Bot API channel for botframework, installed as a plugin (``tenants.*.channels.telegram``)."""

from bf_telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter"]
