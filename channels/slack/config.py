"""Options of the Slack channel: ``tenants.*.channels.slack``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from botframework.config.types import HttpUrl, Secret, StrictModel

__all__ = ["SlackChannelConfig"]


class SlackChannelConfig(StrictModel):
    """Slack Events API at ``POST /t/{tenant}/slack/events`` (or Socket Mode)."""

    signing_secret: Secret
    """Verifies every Events API request (HMAC-SHA256)."""
    bot_token: Secret
    """``xoxb-`` token for the Web API."""
    api_base_url: HttpUrl = "https://slack.com/api/"
    """Web API base; point it elsewhere for tests or proxies."""
    mode: Literal["events", "socket"] = "events"
    """``events``: webhook at /t/{tenant}/slack/events; ``socket``: Socket Mode (needs app_token)."""
    app_token: SecretStr | None = None
    """``xapp-`` token for Socket Mode."""
    live_updates: bool = False
    """Post a placeholder and edit it with chat.update while the reply is produced."""
    update_interval_s: float = Field(1.0, ge=0.2, le=30)
    """Minimum time between chat.update calls."""

    @model_validator(mode="after")
    def _socket(self) -> SlackChannelConfig:
        if self.mode == "socket" and self.app_token is None:
            raise ValueError("app_token is required when mode is 'socket'")
        return self
