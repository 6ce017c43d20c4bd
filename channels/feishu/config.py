"""Options of the Feishu/Lark channel: ``tenants.*.channels.feishu``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from botframework.config.types import HttpUrl, Secret, StrictModel, StrId

__all__ = ["FeishuChannelConfig"]


class FeishuChannelConfig(StrictModel):
    """Feishu/Lark event subscription v2 at ``POST /t/{tenant}/feishu/events`` (or the long connection)."""

    app_id: StrId = Field(examples=["cli_a1b2c3d4e5f6"])
    """App ID (``cli_...``)."""
    app_secret: Secret
    """App secret."""
    encrypt_key: SecretStr | None = None
    """Event encryption key; when set, bodies are encrypted and signed."""
    verification_token: SecretStr | None = None
    """Verification token of the event subscription."""
    domain: HttpUrl = "https://open.feishu.cn"
    """``https://open.feishu.cn`` or ``https://open.larksuite.com``."""
    mode: Literal["webhook", "websocket"] = "webhook"
    """``webhook``: POST /t/{tenant}/feishu/events; ``websocket``: long connection."""
    live_updates: bool = False
    """Reply with a placeholder card and edit it (PATCH message) while the reply is produced."""
    update_interval_s: float = Field(1.0, ge=0.2, le=30)
    """Minimum time between card edits (Feishu allows 5 per second per message)."""
    replay_window_s: int = Field(300, ge=0, le=86_400)
    """Refuse callbacks whose timestamp is further than this many seconds from the server's clock, and
    bind each (timestamp, nonce) to one body. 0 turns the window off: only for replaying the vendor's
    old sample requests, never in production."""

    @model_validator(mode="after")
    def _webhook_is_verifiable(self) -> FeishuChannelConfig:
        if self.mode == "webhook" and self.encrypt_key is None and self.verification_token is None:
            raise ValueError(
                "webhook mode needs encrypt_key or verification_token (or both); without them anyone could post events"
            )
        return self
