"""A local fake of the WeChat Official Account API (``token``, ``message/custom/send``).

Same controls and records as :class:`tests.fakes.wecom_api.FakeTencentApi`. An expired token
answers 42001, an unknown one 40014; the token endpoint answers without ``errcode`` on success, as
WeChat does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tests.fakes.wecom_api import ApiCall, FakeTencentApi

__all__ = ["ApiCall", "FakeWeChat"]


@dataclass
class FakeWeChat(FakeTencentApi):
    """WeChat: ``GET /cgi-bin/token?grant_type=client_credential&appid&secret``, custom send."""

    token_path: ClassVar[str] = "/cgi-bin/token"
    send_path: ClassVar[str] = "/cgi-bin/message/custom/send"

    def token_response(self, token: str) -> dict[str, Any]:
        return {"access_token": token, "expires_in": 7200}
