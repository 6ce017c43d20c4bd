"""Bedrock's errors, as the ``anthropic`` SDK raises them -> ModelError kinds: the one table of this
provider. HTTP errors carry ``{"message": ...}`` and the exception name in ``x-amzn-ErrorType``; an
error inside an event stream arrives as an ``error`` event whose type is that name."""

from __future__ import annotations

import anthropic

from botframework.errors import ErrorKind
from botframework.models.classify import ExceptionTable, HttpAnswer
from providers.anthropic.errors import ANTHROPIC_ERRORS

__all__ = ["BEDROCK_ERRORS"]

_CODES: dict[str, ErrorKind] = {
    "throttlingexception": ErrorKind.RATE_LIMITED,
    "servicequotaexceededexception": ErrorKind.RATE_LIMITED,
    "serviceunavailableexception": ErrorKind.OVERLOADED,
    "modelnotreadyexception": ErrorKind.OVERLOADED,
    "internalserverexception": ErrorKind.SERVER_ERROR,
    "modelstreamerrorexception": ErrorKind.SERVER_ERROR,
    "modelerrorexception": ErrorKind.SERVER_ERROR,
    "modeltimeoutexception": ErrorKind.TIMEOUT,
    "accessdeniedexception": ErrorKind.AUTH,
    "unrecognizedclientexception": ErrorKind.AUTH,
    "invalidsignatureexception": ErrorKind.AUTH,
    "missingauthenticationtokenexception": ErrorKind.AUTH,
    "expiredtokenexception": ErrorKind.AUTH,
    "resourcenotfoundexception": ErrorKind.MODEL_NOT_FOUND,
}
"""``ValidationException`` is left out on purpose: a 400 whose message then says what it is
(an oversized prompt is a context overflow, anything else a bad request)."""


def _answer(exc: BaseException) -> HttpAnswer:
    answer = ANTHROPIC_ERRORS.read_answer(exc)
    error_type = ""
    if isinstance(exc, anthropic.APIStatusError) and exc.response is not None:
        error_type = exc.response.headers.get("x-amzn-errortype", "").split(":")[0]
    if error_type:  # an HTTP error answer of Bedrock itself (not an error event inside a stream)
        body = exc.body if isinstance(exc, anthropic.APIStatusError) and isinstance(exc.body, dict) else {}
        message = str(body.get("message") or body.get("Message") or answer.message)
        return HttpAnswer(
            status=answer.status,
            body={"error": {"type": error_type, "message": message}},
            headers=answer.headers,
            message=message,
        )
    return answer


BEDROCK_ERRORS = ExceptionTable(
    answered=ANTHROPIC_ERRORS.answered,
    read_answer=_answer,
    timeouts=ANTHROPIC_ERRORS.timeouts,
    connection=ANTHROPIC_ERRORS.connection,
    other=ANTHROPIC_ERRORS.other,
    codes=_CODES,
)
