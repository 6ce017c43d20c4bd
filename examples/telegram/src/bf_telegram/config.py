"""Options of the Telegram channel: ``tenants.*.channels.telegram``."""

from __future__ import annotations

import re
from typing import Literal

from botframework.config.types import HttpUrl, Secret, StrictModel
from pydantic import Field, SecretStr, field_validator, model_validator

__all__ = ["TelegramChannelConfig"]

_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,}$")
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramChannelConfig(StrictModel):
    """Telegram Bot API: webhook at ``POST /t/{tenant}/telegram/webhook``, or long polling."""

    bot_token: Secret
    """The token @BotFather gave the bot (``123456789:AA...``); its number is the bot's user id."""
    secret_token: SecretStr | None = None
    """Compared with the ``X-Telegram-Bot-Api-Secret-Token`` header of every webhook request; give
    the same value to ``setWebhook``. 1-256 characters of ``A-Z a-z 0-9 _ -``. Required in webhook mode."""
    mode: Literal["webhook", "polling"] = "webhook"
    """``webhook``: Telegram posts updates to this server; ``polling``: this server calls ``getUpdates``
    (no public URL needed; Telegram refuses it while a webhook is set, so polling deletes the webhook)."""
    webhook_url: HttpUrl | None = None
    """Public HTTPS URL of ``/t/{tenant}/telegram/webhook``; when set, start-up registers it with
    ``setWebhook`` (with ``secret_token``). Leave unset to register it yourself."""
    api_base_url: HttpUrl = "https://api.telegram.org"
    """Bot API server; point it elsewhere for a local Bot API server, a proxy or tests."""
    request_timeout_s: float = Field(30.0, gt=0, le=300)
    """Timeout of one Bot API call (a long poll waits ``poll_timeout_s`` longer)."""
    poll_timeout_s: int = Field(30, ge=1, le=50)
    """Polling mode: how long one ``getUpdates`` call waits for updates."""
    live_updates: bool = False
    """Send the reply as it is written: a first message edited with ``editMessageText`` until it is done."""
    update_interval_s: float = Field(1.5, ge=1.0, le=30)
    """Minimum time between two edits of that message (Telegram limits edits per chat)."""

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _BOT_TOKEN.match(value.get_secret_value()):
            raise ValueError("must look like 123456789:AA... (the token @BotFather gave the bot)")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET_TOKEN.match(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (what setWebhook accepts)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramChannelConfig:
        if self.mode == "webhook" and self.secret_token is None:
            raise ValueError("secret_token is required in webhook mode (it authenticates Telegram's requests)")
        return self

    @property
    def bot_id(self) -> int:
        """The bot's own user id: the number before the colon of its token."""
        return int(self.bot_token.get_secret_value().split(":", 1)[0])
