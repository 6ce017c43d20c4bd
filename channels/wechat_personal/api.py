"""A small async client for Tencent's iLink bot API (personal WeChat). There is no Python SDK.

JSON over HTTPS: POST for the bot endpoints, GET for the QR login. Every request carries
``AuthorizationType: ilink_bot_token``, ``Authorization: Bearer <bot token>`` once logged in, and
``X-WECHAT-UIN``: base64 of a random uint32 written in decimal, new for each request; bodies carry
``base_info.channel_version``.

HTTP 200 is not success: the body's ``ret`` (and ``errcode``) must be 0 or absent, otherwise
:class:`ILinkError`. ``-14`` means the session expired (or the WeChat account was bound elsewhere):
only a new login helps. The bot token never appears in an error message (transport errors are
named by type only; their text can carry request details).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp

from botframework import __version__
from botframework.errors import ChannelError

__all__ = ["SESSION_EXPIRED", "ILinkApi", "ILinkError"]

SESSION_EXPIRED = -14
_EXPLANATIONS = {
    -2: "refused: the context token is stale, or WeChat's limit of bot messages per user message is reached",
    SESSION_EXPIRED: "the session expired or the WeChat account was bound elsewhere; log in again",
}
_FINAL = frozenset({-2, SESSION_EXPIRED})
"""Codes another attempt with the same request cannot get past."""


class ILinkError(ChannelError):
    """An iLink call failed: ``ret``/``errcode`` from the body (0 for transport and HTTP failures)."""

    def __init__(self, message: str, *, ret: int = 0, errcode: int = 0, retryable: bool) -> None:
        super().__init__(message)
        self.ret = ret
        self.errcode = errcode
        self.retryable = retryable

    @property
    def session_expired(self) -> bool:
        return SESSION_EXPIRED in (self.ret, self.errcode)


def _uin() -> str:
    return base64.b64encode(str(secrets.randbits(32)).encode("ascii")).decode("ascii")


def _code(body: Mapping[str, Any], key: str) -> int:
    try:
        return int(body.get(key) or 0)
    except (TypeError, ValueError):
        return -1


class ILinkApi:
    """One bot session (``token``) on one iLink host; without a token only the QR login works."""

    def __init__(self, *, base_url: str, token: str | None = None, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "AuthorizationType": "ilink_bot_token", "X-WECHAT-UIN": _uin()}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
    ) -> Mapping[str, Any]:
        url = f"{(base_url or self.base_url).rstrip('/')}/{path}"
        data = None
        if payload is not None:
            body = {**payload, "base_info": {"channel_version": f"botframework/{__version__}"}}
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else None
        try:
            async with self._http().request(
                method, url, data=data, params=params, headers=self._headers(), timeout=timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise ILinkError(f"ilink {what}: {type(exc).__name__} calling {path}", retryable=True) from exc
        if status != 200:
            raise ILinkError(f"ilink {what}: HTTP {status} from {path}", retryable=status >= 500 or status == 429)
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ILinkError(f"ilink {what}: {path} answered non-JSON {raw[:80]!r}", retryable=True) from exc
        if not isinstance(parsed, dict):
            raise ILinkError(f"ilink {what}: {path} answered {type(parsed).__name__}, not an object", retryable=True)
        ret, errcode = _code(parsed, "ret"), _code(parsed, "errcode")
        if ret or errcode:
            code = ret or errcode
            explained = _EXPLANATIONS.get(code, "")
            errmsg = str(parsed.get("errmsg") or "")[:200]
            detail = "; ".join(p for p in (errmsg, explained) if p)
            raise ILinkError(
                f"ilink {what}: ret={ret} errcode={errcode}" + (f" ({detail})" if detail else ""),
                ret=ret,
                errcode=errcode,
                retryable=code not in _FINAL,
            )
        return parsed

    # messages

    async def get_updates(self, cursor: str, *, timeout_s: float) -> Mapping[str, Any]:
        """One long poll. A poll the server holds past ``timeout_s`` (plus a margin) is an empty answer."""
        try:
            return await self._call(
                "POST",
                "ilink/bot/getupdates",
                what="getupdates",
                payload={"get_updates_buf": cursor},
                timeout_s=timeout_s + 5.0,
            )
        except TimeoutError:
            return {"msgs": [], "get_updates_buf": cursor}

    async def send_text(self, *, to_user: str, context_token: str, text: str, client_id: str) -> None:
        """One text message to a user, in the context of their message."""
        message: dict[str, Any] = {
            "from_user_id": "",
            "to_user_id": to_user,
            "client_id": client_id,
            "message_type": 2,
            "message_state": 2,
            "item_list": [{"type": 1, "text_item": {"text": text}}],
        }
        if context_token:
            message["context_token"] = context_token
        await self._timed("sendmessage", {"msg": message})

    async def typing_ticket(self, *, user: str, context_token: str) -> str:
        """The ticket ``send_typing`` needs for ``user`` ("" when iLink gives none)."""
        body = await self._timed("getconfig", {"ilink_user_id": user, "context_token": context_token})
        return str(body.get("typing_ticket") or "")

    async def send_typing(self, *, user: str, ticket: str, typing: bool) -> None:
        await self._timed("sendtyping", {"ilink_user_id": user, "typing_ticket": ticket, "status": 1 if typing else 2})

    async def _timed(self, endpoint: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return await self._call("POST", f"ilink/bot/{endpoint}", what=endpoint, payload=payload)
        except TimeoutError as exc:
            raise ILinkError(f"ilink {endpoint}: no answer in time", retryable=True) from exc

    # login

    async def get_qrcode(self, *, bot_type: str) -> tuple[str, str]:
        """A new login QR code: its id and the content (a URL) to show as a QR code."""
        try:
            body = await self._call(
                "GET", "ilink/bot/get_bot_qrcode", what="get_bot_qrcode", params={"bot_type": bot_type}
            )
        except TimeoutError as exc:
            raise ILinkError("ilink get_bot_qrcode: no answer in time", retryable=True) from exc
        qrcode, content = str(body.get("qrcode") or ""), str(body.get("qrcode_img_content") or "")
        if not (qrcode and content):
            raise ILinkError("ilink get_bot_qrcode answered without qrcode or qrcode_img_content", retryable=True)
        return qrcode, content

    async def qrcode_status(
        self, qrcode: str, *, base_url: str, verify_code: str = "", timeout_s: float = 35.0
    ) -> Mapping[str, Any]:
        """The login's state (a long poll: ``wait`` when nothing happened within ``timeout_s``)."""
        params = {"qrcode": qrcode, **({"verify_code": verify_code} if verify_code else {})}
        try:
            return await self._call(
                "GET",
                "ilink/bot/get_qrcode_status",
                what="get_qrcode_status",
                params=params,
                base_url=base_url,
                timeout_s=timeout_s,
            )
        except TimeoutError:
            return {"status": "wait"}

    # media

    async def download(self, url: str, *, max_bytes: int) -> bytes:
        """A CDN file (no credentials are sent with it), at most ``max_bytes``."""
        try:
            async with self._http().get(url) as response:
                if response.status != 200:
                    raise ILinkError(f"cdn download: HTTP {response.status}", retryable=response.status >= 500)
                data = await response.content.read(max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ILinkError(f"cdn download: {type(exc).__name__}", retryable=True) from exc
        if len(data) > max_bytes:
            raise ILinkError(f"cdn download: larger than {max_bytes} bytes", retryable=False)
        return data
