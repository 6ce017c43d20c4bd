"""Error classification: codes first, then status, message patterns last."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from botframework.errors import (
    ContextOverflowError,
    ErrorKind,
    ModelTimeoutError,
    RateLimitedError,
)
from botframework.models.classify import (
    ExceptionTable,
    HttpAnswer,
    classify_exception,
    classify_response,
    overflow_numbers,
    parse_retry_after,
)


def oai(message: str, *, type: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


def ant(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


CASES: list[tuple[str, int | None, Any, ErrorKind]] = [
    (
        "openai 429 rate limit",
        429,
        oai("Rate limit reached", type="requests", code="rate_limit_exceeded"),
        ErrorKind.RATE_LIMITED,
    ),
    (
        "openai 429 insufficient_quota is billing",
        429,
        oai("You exceeded your current quota", type="insufficient_quota", code="insufficient_quota"),
        ErrorKind.BILLING,
    ),
    (
        "429 quota wording without a code is billing",
        429,
        {"error": {"message": "You exceeded your current quota"}},
        ErrorKind.BILLING,
    ),
    (
        "openai context_length_exceeded",
        400,
        oai(
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens",
            code="context_length_exceeded",
        ),
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    (
        "vLLM overflow without a code",
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 4096 tokens. However, you requested "
            "5000 tokens (4000 in the messages, 1000 in the completion).",
            "type": "BadRequestError",
            "code": 400,
        },
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    (
        "llama.cpp overflow",
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
            }
        },
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    (
        "anthropic prompt too long",
        400,
        ant("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    (
        "anthropic input+max_tokens",
        400,
        ant(
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 197626 + 21333 > 200000, "
            "decrease input length or `max_tokens` and try again",
        ),
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    (
        "anthropic credit balance",
        400,
        ant("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
        ErrorKind.BILLING,
    ),
    ("anthropic billing_error type", 400, ant("billing_error", "billing issue"), ErrorKind.BILLING),
    (
        "deepseek 402",
        402,
        {"error": {"message": "Insufficient Balance", "type": "unknown_error"}},
        ErrorKind.BILLING,
    ),
    ("401", 401, oai("Incorrect API key provided: sk-xx", code="invalid_api_key"), ErrorKind.AUTH),
    ("403 permission", 403, ant("permission_error", "Your API key does not have permission"), ErrorKind.AUTH),
    (
        "404 model",
        404,
        oai("The model `gpt-9` does not exist", code="model_not_found"),
        ErrorKind.MODEL_NOT_FOUND,
    ),
    ("anthropic 404", 404, ant("not_found_error", "model: claude-nope"), ErrorKind.MODEL_NOT_FOUND),
    (
        "400 model does not exist (compat server)",
        400,
        {"error": {"message": "model 'llama9' not found, try pulling it"}},
        ErrorKind.MODEL_NOT_FOUND,
    ),
    (
        "azure content filter",
        400,
        oai(
            "The response was filtered due to the prompt triggering Azure OpenAI's content management "
            "policy.",
            code="content_filter",
        ),
        ErrorKind.CONTENT_FILTER,
    ),
    ("generic 400", 400, oai("'messages' must contain the word 'json'"), ErrorKind.BAD_REQUEST),
    ("422 validation", 422, {"detail": [{"msg": "field required"}]}, ErrorKind.BAD_REQUEST),
    ("500", 500, oai("The server had an error", type="server_error"), ErrorKind.SERVER_ERROR),
    ("502 bare", 502, None, ErrorKind.SERVER_ERROR),
    ("503 overloaded", 503, oai("The engine is currently overloaded"), ErrorKind.OVERLOADED),
    ("529 overloaded", 529, ant("overloaded_error", "Overloaded"), ErrorKind.OVERLOADED),
    ("504", 504, None, ErrorKind.TIMEOUT),
    ("408", 408, None, ErrorKind.TIMEOUT),
    (
        "413 request too large",
        413,
        ant("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        ErrorKind.CONTEXT_OVERFLOW,
    ),
    ("409 conflict is transient", 409, None, ErrorKind.SERVER_ERROR),
    ("in-stream overloaded (no status)", None, ant("overloaded_error", "Overloaded"), ErrorKind.OVERLOADED),
    ("in-stream api_error", None, ant("api_error", "Internal server error"), ErrorKind.SERVER_ERROR),
    (
        "in-stream openai error without code",
        None,
        {"message": "something broke", "type": None},
        ErrorKind.SERVER_ERROR,
    ),
    (
        "anthropic in-stream error arrives with status 200",
        200,
        ant("overloaded_error", "Overloaded"),
        ErrorKind.OVERLOADED,
    ),
    ("plain text body", 400, "Bad Request: prompt is too long", ErrorKind.CONTEXT_OVERFLOW),
]


@pytest.mark.parametrize(("status", "body", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify_response(status: int | None, body: Any, kind: ErrorKind) -> None:
    error = classify_response(status=status, body=body, model="main")
    assert error.kind is kind
    assert error.model == "main"
    assert error.status == (status if status is not None and status >= 400 else None)


def test_message_carries_the_provider_text() -> None:
    error = classify_response(status=401, body=oai("Incorrect API key provided: sk-abc"), model="gpt")
    assert "Incorrect API key provided" in str(error)
    assert str(error).startswith("[auth] gpt:")


def test_overflow_numbers_are_parsed() -> None:
    e = classify_response(
        status=400,
        body=oai(
            "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
            "(8000 in the "
            "messages, 1000 in the completion).",
            code="context_length_exceeded",
        ),
    )
    assert isinstance(e, ContextOverflowError)
    assert (e.limit, e.requested) == (8192, 9000)
    assert overflow_numbers("prompt is too long: 208310 tokens > 200000 maximum") == (200000, 208310)
    assert overflow_numbers("exceed context limit: 197626 + 21333 > 200000, decrease") == (200000, 218959)
    assert overflow_numbers("request (9000 tokens) exceeds the available context size (8192 tokens)") == (
        8192,
        9000,
    )
    assert overflow_numbers("too long") == (None, None)


def test_retry_after_on_rate_limit() -> None:
    e = classify_response(
        status=429, body=oai("slow down", code="rate_limit_exceeded"), headers={"Retry-After": "7"}
    )
    assert isinstance(e, RateLimitedError)
    assert e.retry_after == 7.0


def test_parse_retry_after_variants() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    now = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "Thu, 05 Nov 2026 12:00:30 GMT"}, now=now) == 30.0
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}, "Please try again in 20ms.") == 0.02
    assert parse_retry_after(None, "Please try again in 1.5s.") == 1.5
    assert parse_retry_after(None, "nothing here") is None


def test_classify_exception_without_an_sdk_table() -> None:
    """Python's own timeouts and connection errors are always recognised; anything else is a bug."""
    slow = classify_exception(TimeoutError(), model="m", timeout_s=3)
    assert isinstance(slow, ModelTimeoutError) and "3s" in str(slow)
    reset = classify_exception(ConnectionResetError("reset by peer"), model="m")
    assert reset is not None and reset.kind is ErrorKind.CONNECTION and "reset by peer" in str(reset)
    assert classify_exception(asyncio.CancelledError()) is None
    assert classify_exception(KeyError("bug")) is None


class _VendorStatus(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


class _VendorDrop(Exception):
    pass


TABLE = ExceptionTable(
    answered=(_VendorStatus,),
    read_answer=lambda exc: HttpAnswer(
        status=exc.status if isinstance(exc, _VendorStatus) else None,
        body=exc.body if isinstance(exc, _VendorStatus) else None,
        headers={"retry-after": "7"},
        message=str(exc),
    ),
    connection=(_VendorDrop,),
)


def test_a_provider_table_maps_its_sdk_exceptions() -> None:
    limited = TABLE.classify(_VendorStatus(429, oai("slow down", code="rate_limit_exceeded")), model="m")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 7.0
    dropped = TABLE.classify(_VendorDrop("stream cut"), model="m")
    assert dropped is not None and dropped.kind is ErrorKind.CONNECTION and "stream cut" in str(dropped)
    assert TABLE.classify(ValueError("bug"), model="m") is None
