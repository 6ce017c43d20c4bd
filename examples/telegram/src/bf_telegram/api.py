"""The few Bot API calls the channel makes, over aiohttp.

The Bot API is JSON over HTTPS: ``POST {api_base_url}/bot<token>/<method>`` answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": 429, "description": "...",
"parameters": {"retry_after": 5}}``. Both become either the result or a :class:`TelegramApiError`;
transport failures become :class:`TelegramNetworkError`. The token is part of every URL, so no
message of either error ever quotes a URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["BotApi", "TelegramApiError", "TelegramNetworkError"]


class TelegramApiError(Exception):
    """The Bot API answered ``ok: false``."""

    def __init__(self, method: str, *, error_code: int, description: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(f"{method}: {error_code} {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = parameters.get("retry_after")
        """Seconds to wait before the next call (HTTP 429)."""
        self.migrate_to_chat_id = parameters.get("migrate_to_chat_id")
        """The group became this supergroup: send there instead."""

    @property
    def retryable(self) -> bool:
        """Rate limits and server errors may pass; a bad request, a blocked bot or a bad token will not."""
        return self.error_code == 429 or self.error_code >= 500


class TelegramNetworkError(Exception):
    """The Bot API could not be reached, or did not answer in time, or answered something not JSON."""


class BotApi:
    """One bot's Bot API client. Not retrying: the core retries deliveries, the poller its polls."""

    def __init__(self, *, token: str, base_url: str, timeout_s: float) -> None:
        self._token = token
        self._base = f"{base_url.rstrip('/')}/bot{token}/"
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def call(self, method: str, params: Mapping[str, Any] | None = None, *, wait_s: float = 0) -> Any:
        """``method``'s result. ``wait_s`` extends the timeout (a long poll holds the request)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self._timeout_s + wait_s)
        try:
            async with self._session.post(self._base + method, json=dict(params or {}), timeout=timeout) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            raise TelegramNetworkError(f"{method}: no answer within {self._timeout_s + wait_s:g}s") from None
        except aiohttp.ClientError as exc:
            detail = str(exc).replace(self._token, "<token>")
            raise TelegramNetworkError(f"{method}: {type(exc).__name__}: {detail}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise TelegramNetworkError(f"{method}: HTTP {status} with a body that is not JSON") from None
        if not isinstance(body, Mapping):
            raise TelegramNetworkError(f"{method}: HTTP {status} with a body that is not a JSON object")
        if body.get("ok") is True:
            return body.get("result")
        parameters, code = body.get("parameters"), body.get("error_code")
        raise TelegramApiError(
            method,
            error_code=code if isinstance(code, int) and not isinstance(code, bool) else status,
            description=str(body.get("description") or "no description"),
            parameters=parameters if isinstance(parameters, Mapping) else {},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
