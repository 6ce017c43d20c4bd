"""Options of the WebSocket (web chat) channel: ``tenants.*.channels.websocket``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from botframework.config.types import StrictModel

__all__ = ["WebSocketChannelConfig"]


class WebSocketChannelConfig(StrictModel):
    """Web chat: ``GET /t/{tenant}/ws`` and the page at ``/t/{tenant}/chat``."""

    identity: Literal["anonymous", "signed", "none"] = "anonymous"
    """Who a connection is. ``anonymous``: the server issues each new visitor an id and a ``resume``
    token (the chat page keeps it), ``?user=`` is ignored. ``signed``: ``?user=U&expires=E&sig=S``
    signed with ``secret`` by your site (``botframework sign-user``). ``none``: ``?user=`` is trusted
    as given; only behind an authenticating proxy or on a trusted network."""
    secret: SecretStr | None = Field(None, min_length=16)
    """HMAC-SHA256 key of ``signed`` links (at least 16 characters; use ``${VAR}``)."""
    token: SecretStr | None = None
    """Shared secret every client must pass as ``?token=`` in any identity mode; omitted means none."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Web origins (``https://app.example.com``) whose pages may open the socket, besides the server's
    own host. A browser handshake from any other Origin is refused with 403."""
    rate_limit_per_min: int = Field(30, ge=1, le=10_000)
    """Messages one user may send per minute (per process); more get a ``rate_limited`` error, unstored."""
    resume_ttl_days: int = Field(365, ge=1, le=3650)
    """How long an ``anonymous`` resume token stays valid; every connection gets a fresh one."""

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"an origin is scheme://host[:port] without a path, got {origin!r}")
        return [o.lower() for o in value]

    @model_validator(mode="after")
    def _signed_needs_secret(self) -> WebSocketChannelConfig:
        if self.identity == "signed" and self.secret is None:
            raise ValueError("identity 'signed' needs a secret (the HMAC key your site signs user links with)")
        return self

    def user_signing_secret(self) -> SecretStr | None:
        """The key ``botframework sign-user`` signs links with (only in ``signed`` mode)."""
        return self.secret if self.identity == "signed" else None
