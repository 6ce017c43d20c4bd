"""Turn HTTP statuses, error bodies and exceptions into :mod:`botframework.errors` ModelErrors.

Provider-neutral: no SDK is imported here. Each provider plugin declares one
:class:`ExceptionTable` (its ``errors`` module) saying which of its SDK's exception types carry an
HTTP answer, which are timeouts or connection failures, and how to read status, body and headers
off them; :meth:`ExceptionTable.classify` does the rest the same way for every provider.

Order of evidence: machine-readable error codes/types first (``insufficient_quota`` on a 429 is a
billing problem, not a rate limit), then the HTTP status, and message patterns last, only to refine
a generic status (a bare 400) or a status-less in-stream error. The codes and patterns cover the
wording of the hosted APIs we ship providers for and of the common OpenAI-compatible servers
(vLLM, llama.cpp, Ollama, DeepSeek, Qwen, Moonshot).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botframework.errors import (
    ContextOverflowError,
    ErrorKind,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
    ServerError,
    error_for_kind,
)

__all__ = [
    "ExceptionTable",
    "HttpAnswer",
    "classify_exception",
    "classify_response",
    "error_fields",
    "overflow_numbers",
    "parse_retry_after",
]

_CODE_KINDS: dict[str, ErrorKind] = {
    # context overflow
    "context_length_exceeded": ErrorKind.CONTEXT_OVERFLOW,
    "exceed_context_size_error": ErrorKind.CONTEXT_OVERFLOW,
    "model_context_window_exceeded": ErrorKind.CONTEXT_OVERFLOW,
    # billing
    "insufficient_quota": ErrorKind.BILLING,
    "billing_hard_limit_reached": ErrorKind.BILLING,
    "billing_not_active": ErrorKind.BILLING,
    "billing_error": ErrorKind.BILLING,
    "insufficient_balance": ErrorKind.BILLING,
    "payment_required": ErrorKind.BILLING,
    # rate limits
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "too_many_requests": ErrorKind.RATE_LIMITED,
    # not found
    "model_not_found": ErrorKind.MODEL_NOT_FOUND,
    "not_found_error": ErrorKind.MODEL_NOT_FOUND,
    "deploymentnotfound": ErrorKind.MODEL_NOT_FOUND,
    # auth
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "permission_denied": ErrorKind.AUTH,
    "unauthorized": ErrorKind.AUTH,
    # content filter
    "content_filter": ErrorKind.CONTENT_FILTER,
    "content_policy_violation": ErrorKind.CONTENT_FILTER,
    "responsibleaipolicyviolation": ErrorKind.CONTENT_FILTER,
    # server side
    "overloaded_error": ErrorKind.OVERLOADED,
    "server_overloaded": ErrorKind.OVERLOADED,
}

# Generic server-side types: a specific status (503/529 overloaded, 504 timeout) says more.
_WEAK_CODE_KINDS: dict[str, ErrorKind] = {
    "api_error": ErrorKind.SERVER_ERROR,
    "server_error": ErrorKind.SERVER_ERROR,
    "internal_error": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
}

_STATUS_KINDS: dict[int, ErrorKind] = {
    401: ErrorKind.AUTH,
    402: ErrorKind.BILLING,
    403: ErrorKind.AUTH,
    404: ErrorKind.MODEL_NOT_FOUND,
    408: ErrorKind.TIMEOUT,
    409: ErrorKind.SERVER_ERROR,
    413: ErrorKind.CONTEXT_OVERFLOW,
    429: ErrorKind.RATE_LIMITED,
    500: ErrorKind.SERVER_ERROR,
    502: ErrorKind.SERVER_ERROR,
    503: ErrorKind.OVERLOADED,
    504: ErrorKind.TIMEOUT,
    529: ErrorKind.OVERLOADED,
}

_PATTERNS: tuple[tuple[ErrorKind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (
            ErrorKind.CONTEXT_OVERFLOW,
            r"context[ _]length|maximum context|context (window|size|limit)|prompt is too long"
            r"|input length and `?max_tokens`? exceed|too many (input )?tokens|token limit"
            r"|input (is )?too long|range of input length|reduce the length of the (messages|prompt)"
            r"|exceeds? the (maximum|max)\w* (number of )?(input )?tokens",
        ),
        (
            ErrorKind.BILLING,
            r"insufficient[ _](quota|balance|funds|credits?)|credit balance|exceeded your current quota"
            r"|billing|payment required",
        ),
        (
            ErrorKind.MODEL_NOT_FOUND,
            r"model\b.{0,80}\b(does not exist|not found|not exist|is not supported|unknown)|no such model"
            r"|unknown model|model_not_found",
        ),
        (ErrorKind.AUTH, r"(invalid|incorrect|missing) (x-)?api[ _-]?key|unauthori[sz]ed|authentication"),
        (
            ErrorKind.CONTENT_FILTER,
            r"content (management )?polic|content[ _]filter|safety (system|filter)|responsible ?ai",
        ),
        (ErrorKind.RATE_LIMITED, r"rate[ _]limit|too many requests"),
        (ErrorKind.OVERLOADED, r"overloaded|over capacity"),
        (ErrorKind.TIMEOUT, r"timed out|timeout"),
    )
)

_OVERFLOW_NUMBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OpenAI / vLLM / DeepSeek: "maximum context length is 8192 tokens. However, you requested 9000 tokens"
    (
        re.compile(
            r"maximum context length is (?P<limit>\d+) tokens.*?(?:requested|resulted in) (?P<req>\d+)",
            re.IGNORECASE | re.DOTALL,
        ),
        "limit_first",
    ),
    # Anthropic: "prompt is too long: 208310 tokens > 200000 maximum"
    (re.compile(r"(?P<req>\d+) tokens > (?P<limit>\d+) maximum", re.IGNORECASE), "req_first"),
    # Anthropic: "input length and `max_tokens` exceed context limit: 197626 + 21333 > 200000"
    (re.compile(r"(?P<a>\d+) \+ (?P<b>\d+) > (?P<limit>\d+)"), "sum"),
    # Gemini: "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
    (
        re.compile(
            r"input token count \((?P<req>\d+)\) exceeds the maximum number of tokens allowed \((?P<limit>\d+)\)",
            re.IGNORECASE,
        ),
        "req_first",
    ),
    # Cohere: "too many tokens: total number of tokens (prompt and prediction) cannot exceed 2048 - received 6354"
    (re.compile(r"cannot exceed (?P<limit>\d+) - received (?P<req>\d+)", re.IGNORECASE), "req_first"),
    # llama.cpp: "request (9000 tokens) exceeds the available context size (8192 tokens)"
    (
        re.compile(
            r"\((?P<req>\d+) tokens\) exceeds the available context size \((?P<limit>\d+) tokens\)",
            re.IGNORECASE,
        ),
        "req_first",
    ),
)

_TRY_AGAIN = re.compile(r"try again in (?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s)\b", re.IGNORECASE)


def error_fields(body: object) -> tuple[str | None, str | None, str]:
    """``(code, type, message)`` from an error body in OpenAI's or Anthropic's shape (or the inner dict)."""
    inner: Any = body
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        inner = body["error"]
    if not isinstance(inner, Mapping):
        return None, None, str(body) if isinstance(body, str) else ""
    code = inner.get("code")
    details = inner.get("details")
    if code is None and isinstance(details, Mapping):
        code = details.get("error_code")
    etype = inner.get("type")
    message = inner.get("message")
    return (
        str(code) if code is not None else None,
        str(etype) if etype is not None else None,
        str(message) if message is not None else "",
    )


def overflow_numbers(message: str) -> tuple[int | None, int | None]:
    """``(limit, requested)`` tokens when the provider's overflow message states them."""
    for pattern, shape in _OVERFLOW_NUMBERS:
        m = pattern.search(message)
        if m is None:
            continue
        if shape == "sum":
            return int(m["limit"]), int(m["a"]) + int(m["b"])
        return int(m["limit"]), int(m["req"])
    return None, None


def parse_retry_after(
    headers: Mapping[str, str] | None, message: str = "", *, now: datetime | None = None
) -> float | None:
    """Seconds to wait: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date), "try again in Xs"."""
    if headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        raw_ms = lowered.get("retry-after-ms")
        if raw_ms is not None:
            try:
                return max(0.0, float(raw_ms) / 1000)
            except ValueError:
                pass
        raw = lowered.get("retry-after")
        if raw is not None:
            try:
                return max(0.0, float(raw))
            except ValueError:
                try:
                    when = parsedate_to_datetime(raw)
                except (TypeError, ValueError):
                    when = None
                if when is not None:
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=UTC)
                    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    m = _TRY_AGAIN.search(message)
    if m is not None:
        value = float(m["n"])
        return value / 1000 if m["unit"].lower() == "ms" else value
    return None


def _kind_from_code(*values: str | None, table: Mapping[str, ErrorKind] = _CODE_KINDS) -> ErrorKind | None:
    for value in values:
        if value:
            kind = table.get(value.lower())
            if kind is not None:
                return kind
    return None


def _kind_from_message(text: str, *, only: frozenset[ErrorKind] | None = None) -> ErrorKind | None:
    for kind, pattern in _PATTERNS:
        if (only is None or kind in only) and pattern.search(text):
            return kind
    return None


def classify_response(
    *,
    status: int | None,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    message: str = "",
    model: str = "",
    codes: Mapping[str, ErrorKind] | None = None,
) -> ModelError:
    """The ModelError for an error answer: an HTTP status (None for an in-stream error) and its body.

    ``codes``: a provider's own error codes (lower-case), consulted before the common ones."""
    code, etype, body_message = error_fields(body)
    text = body_message or message
    if body_message and message and body_message not in message:
        text = f"{body_message} ({message})"
    detail = text or (f"HTTP {status}" if status else "error without a message")
    if status is not None and status < 400:
        status = None

    kind = _kind_from_code(code, etype, table=codes) if codes else None
    if kind is None:
        kind = _kind_from_code(code, etype)
    if kind is None and status is not None:
        kind = _STATUS_KINDS.get(status)
        if kind is ErrorKind.RATE_LIMITED and _kind_from_message(text, only=_BILLING_ONLY):
            kind = ErrorKind.BILLING
        if kind is None and status >= 500:
            kind = ErrorKind.SERVER_ERROR
    if kind is None:
        kind = _kind_from_code(code, etype, table=_WEAK_CODE_KINDS)
    if kind is None:
        kind = _kind_from_message(text)
    if kind is None:
        kind = ErrorKind.BAD_REQUEST if status is not None else ErrorKind.SERVER_ERROR

    if kind is ErrorKind.RATE_LIMITED:
        return RateLimitedError(detail, model=model, status=status, retry_after=parse_retry_after(headers, text))
    if kind is ErrorKind.CONTEXT_OVERFLOW:
        limit, requested = overflow_numbers(text)
        return ContextOverflowError(detail, model=model, status=status, limit=limit, requested=requested)
    if kind in (ErrorKind.SERVER_ERROR, ErrorKind.OVERLOADED):
        return ServerError(
            detail,
            model=model,
            status=status,
            overloaded=kind is ErrorKind.OVERLOADED,
            retry_after=parse_retry_after(headers, text),
        )
    return error_for_kind(kind, detail, model=model, status=status)


_BILLING_ONLY = frozenset({ErrorKind.BILLING})


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAnswer:
    """What an SDK exception says about the HTTP answer that caused it."""

    status: int | None
    body: object = None
    headers: Mapping[str, str] | None = None
    message: str = ""


Exceptions = tuple[type[BaseException], ...]


@dataclass(frozen=True, kw_only=True)
class ExceptionTable:
    """One SDK's exceptions -> ModelErrors. A provider's ``errors`` module declares one.

    Checked in this order: ``answered`` (an HTTP error answer, read by ``read_answer``), ``timeouts``,
    ``connection`` (could not connect, or the connection dropped), then ``other`` (the SDK's other
    errors, e.g. an error event inside a stream, classified by their message and ``read_answer``).
    Python's own ``TimeoutError`` and ``ConnectionError`` are always recognised.
    """

    answered: Exceptions = ()
    read_answer: Callable[[BaseException], HttpAnswer] = lambda exc: HttpAnswer(status=None, message=str(exc))
    timeouts: Exceptions = ()
    connection: Exceptions = ()
    other: Exceptions = ()
    codes: Mapping[str, ErrorKind] = field(default_factory=dict)
    """The provider's own error codes or types (lower-case) and what they mean, before the common ones."""

    def classify(self, exc: BaseException, *, model: str = "", timeout_s: float | None = None) -> ModelError | None:
        """The ModelError for ``exc``; None when it is none of these (a bug: let it propagate)."""
        return classify_exception(exc, model=model, timeout_s=timeout_s, table=self)


_NO_SDK = ExceptionTable()


def classify_exception(
    exc: BaseException, *, model: str = "", timeout_s: float | None = None, table: ExceptionTable = _NO_SDK
) -> ModelError | None:
    """The ModelError for an exception raised by an SDK (described by ``table``) or its transport;
    None if it is not one of theirs.

    Raise the result ``from exc`` at the boundary. Cancellation is never classified.
    """
    if isinstance(exc, asyncio.CancelledError):
        return None
    if isinstance(exc, ModelError):
        return exc
    if table.answered and isinstance(exc, table.answered):
        answer = table.read_answer(exc)
        return classify_response(
            status=answer.status,
            body=answer.body,
            headers=answer.headers,
            message=answer.message,
            model=model,
            codes=table.codes,
        )
    if isinstance(exc, (*table.timeouts, TimeoutError, asyncio.TimeoutError)):
        limit = f" after {timeout_s:g}s" if timeout_s is not None else ""
        return ModelTimeoutError(f"no complete answer{limit} ({type(exc).__name__})", model=model)
    if isinstance(exc, (*table.connection, ConnectionError)):
        reason = str(exc) or type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause) and str(cause) not in reason:
            reason = f"{reason} ({type(cause).__name__}: {cause})"
        return ModelConnectionError(f"connection failed or dropped: {reason}", model=model)
    if table.other and isinstance(exc, table.other):
        answer = table.read_answer(exc)
        return classify_response(
            status=None,
            body=answer.body,
            headers=answer.headers,
            message=answer.message or str(exc),
            model=model,
            codes=table.codes,
        )
    return None
