"""WeChat Official Account API: ``/cgi-bin/token`` and the customer-service ``message/custom/send``.

The token cache, retries on a refused token and errcode handling are :class:`channels.wecom.api.TokenApi`
(there is no official async SDK). WeChat also answers 40001 for a token that is no longer valid.
Customer-service messages may only be sent within 48 hours of the user's last message (45015) and
in limited number per message (45047): both are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from channels.wecom.api import TokenApi

__all__ = ["WeChatApi"]


class WeChatApi(TokenApi):
    """One Official Account: AppID + AppSecret."""

    vendor = "wechat"
    token_path = "/cgi-bin/token"
    expired_codes: ClassVar[frozenset[int]] = frozenset({40001, 40014, 42001})
    explanations: ClassVar[Mapping[int, str]] = {
        **TokenApi.explanations,
        40001: "invalid credential or access_token",
        40003: "invalid openid",
        40125: "invalid AppSecret",
        40164: "the server's IP is not on the account's IP whitelist",
        45015: "the 48-hour customer-service window since the user's last message has passed"
        " (or the user unsubscribed)",
        45047: "customer-service message quota for this user message exhausted",
        48001: "customer-service API not authorized for this account",
    }

    def __init__(self, *, app_id: str, app_secret: str, base_url: str, **options: Any) -> None:
        super().__init__(base_url=base_url, **options)
        self._app_id = app_id
        self._app_secret = app_secret

    def token_params(self) -> dict[str, str]:
        return {"grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret}

    async def send_text(self, touser: str, content: str) -> None:
        """One customer-service text message to a follower (openid)."""
        payload = {"touser": touser, "msgtype": "text", "text": {"content": content}}
        await self.post("/cgi-bin/message/custom/send", payload, what="message/custom/send")
