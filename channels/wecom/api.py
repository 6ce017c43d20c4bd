"""A small async client for the Tencent "cgi-bin" APIs of WeCom and WeChat: token cache + JSON calls.

There is no official async SDK for these APIs (Tencent ships synchronous samples), so this is plain
aiohttp. :class:`TokenApi` holds what both vendors share; :class:`WeComApi` adds ``gettoken`` and
``message/send`` and ``channels.wechat.api.WeChatApi`` adds ``token`` and ``message/custom/send``.

- Access tokens (7,200 s) are cached until expiry minus a margin; one refresh is in flight at a time
  (an ``asyncio.Lock``), and a call answered with an expired/invalid-token errcode refreshes the
  token (unless another call already did) and is retried once.
- Bodies are sent as UTF-8 JSON with ``ensure_ascii=False``: these APIs count the 2,048-byte limits
  on the bytes they receive, and ``\\uXXXX`` escapes have been shown literally by them.
- errcodes become :class:`ApiError` with ``retryable`` set; tokens never appear in messages (aiohttp
  errors that carry the URL are not quoted).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import aiohttp

from botframework.errors import ChannelError

__all__ = ["ApiError", "TokenApi", "WeComApi"]

_SECRET_PARAMS = re.compile(r"(access_token|corpsecret|secret)=[^&\s'\"]+")


def _redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\1=***", text)


class ApiError(ChannelError):
    """A cgi-bin call failed: ``errcode`` is the vendor's (0 for transport failures)."""

    def __init__(self, message: str, *, errcode: int = 0, retryable: bool) -> None:
        super().__init__(_redact(message))
        self.errcode = errcode
        self.retryable = retryable


class TokenApi(ABC):
    """Access-token cache and JSON POSTs for one app; subclasses name the vendor's endpoints."""

    vendor: ClassVar[str]
    token_path: ClassVar[str]
    expired_codes: ClassVar[frozenset[int]] = frozenset({40014, 42001})
    """errcodes meaning "the access token is invalid or expired": refresh and retry once."""
    retryable_codes: ClassVar[frozenset[int]] = frozenset({-1, 45009, 45033})
    """errcodes a later attempt may get past (system busy, frequency/concurrency limits)."""
    explanations: ClassVar[Mapping[int, str]] = {
        -1: "system busy",
        40014: "invalid access_token",
        42001: "access_token expired",
        45009: "API call frequency limit reached",
        45002: "content too long",
        48001: "API not authorized for this app",
    }

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float = 15.0,
        refresh_margin_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._margin = refresh_margin_s
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @abstractmethod
    def token_params(self) -> dict[str, str]:
        """Query parameters of the token endpoint (credentials)."""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # tokens

    async def access_token(self) -> str:
        """A valid cached token, fetching one when there is none or it is about to expire."""
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return await self._refresh(stale=None)

    async def _refresh(self, *, stale: str | None) -> str:
        """Fetch a new token, unless one that is not ``stale`` became valid while we waited."""
        async with self._lock:
            if self._token is not None and self._token != stale and self._clock() < self._expires_at:
                return self._token
            body = await self._request("GET", self.token_path, params=self.token_params(), what="token")
            self._raise_for_errcode(body, what="token")
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise ApiError(f"{self.vendor} token endpoint answered without access_token", retryable=True)
            try:
                lifetime = float(body.get("expires_in", 7200))
            except (TypeError, ValueError):
                lifetime = 7200.0
            self._token = token
            self._expires_at = self._clock() + max(lifetime - self._margin, lifetime / 2)
            return token

    # calls

    async def post(self, path: str, payload: Mapping[str, Any], *, what: str) -> Mapping[str, Any]:
        """POST ``payload`` with the access token; refresh and retry once if the token is refused."""
        token = await self.access_token()
        body = await self._request("POST", path, params={"access_token": token}, payload=payload, what=what)
        if self._errcode(body) in self.expired_codes:
            token = await self._refresh(stale=token)
            body = await self._request("POST", path, params={"access_token": token}, payload=payload, what=what)
        self._raise_for_errcode(body, what=what)
        return body

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        what: str,
        payload: Mapping[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            async with self._http().request(
                method, self.base_url + path, params=params, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # str(exc) of some aiohttp errors holds the URL, hence the token: name the type only.
            raise ApiError(f"{self.vendor} {what}: {type(exc).__name__} calling {path}", retryable=True) from exc
        if status != 200:
            raise ApiError(f"{self.vendor} {what}: HTTP {status} from {path}", retryable=status >= 500 or status == 429)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(f"{self.vendor} {what}: {path} answered non-JSON {raw[:80]!r}", retryable=True) from exc
        if not isinstance(body, dict):
            raise ApiError(
                f"{self.vendor} {what}: {path} answered {type(body).__name__}, not an object", retryable=True
            )
        return body

    @staticmethod
    def _errcode(body: Mapping[str, Any]) -> int:
        try:
            return int(body.get("errcode", 0) or 0)
        except (TypeError, ValueError):
            return -1

    def _raise_for_errcode(self, body: Mapping[str, Any], *, what: str) -> None:
        code = self._errcode(body)
        if code == 0:
            return
        note = self.explanations.get(code, "")
        errmsg = str(body.get("errmsg", ""))[:200]
        detail = f"errcode {code}" + (f" ({note})" if note else "") + (f": {errmsg}" if errmsg else "")
        raise ApiError(f"{self.vendor} {what} failed: {detail}", errcode=code, retryable=code in self.retryable_codes)


class WeComApi(TokenApi):
    """WeCom self-built app: ``gettoken`` with corp id + app secret, ``message/send`` to a user."""

    vendor = "wecom"
    token_path = "/cgi-bin/gettoken"
    explanations: ClassVar[Mapping[int, str]] = {
        **TokenApi.explanations,
        40001: "invalid secret",
        40013: "invalid corp id",
        45033: "API concurrency limit reached",
        60020: "the server's IP is not on the app's trusted IP list",
        81013: "user is not in the app's visible range",
    }

    def __init__(self, *, corp_id: str, secret: str, agent_id: str, base_url: str, **options: Any) -> None:
        super().__init__(base_url=base_url, **options)
        self._corp_id = corp_id
        self._secret = secret
        self.agent_id = int(agent_id) if agent_id.isdigit() else agent_id

    def token_params(self) -> dict[str, str]:
        return {"corpid": self._corp_id, "corpsecret": self._secret}

    async def send_message(
        self, touser: str, content: str, *, msgtype: str = "markdown", duplicate_check_s: int | None = None
    ) -> None:
        """One app message (``markdown`` or ``text``) to one user; a user WeCom reports invalid is a
        permanent failure. With ``duplicate_check_s``, WeCom drops the message if the same content went
        to the same user within that many seconds (``enable_duplicate_check``)."""
        payload: dict[str, Any] = {
            "touser": touser,
            "msgtype": msgtype,
            "agentid": self.agent_id,
            msgtype: {"content": content},
        }
        if duplicate_check_s is not None:
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = duplicate_check_s
        body = await self.post("/cgi-bin/message/send", payload, what="message/send")
        for key in ("invaliduser", "unlicenseduser"):
            if body.get(key):
                raise ApiError(f"wecom message/send: {key} {body[key]!r} (not delivered)", retryable=False)
