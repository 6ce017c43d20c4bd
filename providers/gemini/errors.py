"""The ``google-genai`` SDK's exceptions -> ModelError kinds: the one table of this provider.

Google's errors are ``{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message", "details"}}``:
the ``status`` is the machine-readable code; how long to wait is a ``google.rpc.RetryInfo`` detail
(``retryDelay: "7s"``) rather than a header; a wrong API key is a 400 whose ``ErrorInfo`` detail
says ``API_KEY_INVALID``. The async transport is aiohttp when installed (else httpx), so both
transports' errors are listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
from google.genai import errors as genai_errors

from botframework.errors import ErrorKind
from botframework.models.classify import ExceptionTable, HttpAnswer

__all__ = ["GEMINI_ERRORS"]

try:
    import aiohttp

    _TIMEOUTS: tuple[type[BaseException], ...] = (aiohttp.ServerTimeoutError,)
    _CONNECTION: tuple[type[BaseException], ...] = (aiohttp.ClientError,)
except ImportError:  # pragma: no cover - aiohttp is a dependency of botframework
    _TIMEOUTS = _CONNECTION = ()

_CODES: dict[str, ErrorKind] = {
    "resource_exhausted": ErrorKind.RATE_LIMITED,
    "unavailable": ErrorKind.OVERLOADED,
    "internal": ErrorKind.SERVER_ERROR,
    "deadline_exceeded": ErrorKind.TIMEOUT,
    "unauthenticated": ErrorKind.AUTH,
    "permission_denied": ErrorKind.AUTH,
    "api_key_invalid": ErrorKind.AUTH,
    "not_found": ErrorKind.MODEL_NOT_FOUND,
    "failed_precondition": ErrorKind.BILLING,
}
"""``INVALID_ARGUMENT`` is left out on purpose: a 400 whose message says what it is (an oversized
prompt is a context overflow, anything else a bad request)."""


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def _answer(exc: BaseException) -> HttpAnswer:
    if not isinstance(exc, genai_errors.APIError):
        return HttpAnswer(status=None, message=str(exc))
    raw = exc.details if isinstance(exc.details, Mapping) else {}
    error: Mapping[str, Any] = raw.get("error") if isinstance(raw.get("error"), Mapping) else raw  # type: ignore[assignment]
    code = str(exc.status or "") or None
    headers: dict[str, str] = {}
    response_headers = getattr(exc.response, "headers", None)
    if response_headers is not None:
        headers = {str(k): str(v) for k, v in response_headers.items()}
    for detail in _details(error):
        if detail.get("reason") == "API_KEY_INVALID":
            code = "API_KEY_INVALID"
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s") and "retry-after" not in {k.lower() for k in headers}:
            headers["retry-after"] = delay[:-1]
    message = exc.message or str(exc)
    return HttpAnswer(
        status=exc.code or None,
        body={"error": {"code": code, "message": message}},
        headers=headers or None,
        message=message,
    )


GEMINI_ERRORS = ExceptionTable(
    answered=(genai_errors.APIError,),
    read_answer=_answer,
    timeouts=(*_TIMEOUTS, httpx.TimeoutException, httpx2.TimeoutException),
    connection=(*_CONNECTION, httpx.TransportError, httpx2.TransportError),
    codes=_CODES,
)
