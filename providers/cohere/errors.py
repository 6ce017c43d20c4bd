"""The ``cohere`` SDK's exceptions -> ModelError kinds: the one table of this provider. Its HTTP
errors are ``ApiError`` subclasses with ``status_code``, ``headers`` and a ``{"message": ...}``
body; the transport is httpx."""

from __future__ import annotations

import httpx
from cohere.core.api_error import ApiError

from botframework.models.classify import ExceptionTable, HttpAnswer

__all__ = ["COHERE_ERRORS"]


def _answer(exc: BaseException) -> HttpAnswer:
    if not isinstance(exc, ApiError):
        return HttpAnswer(status=None, message=str(exc))
    body = exc.body
    message = str(body.get("message") or "") if isinstance(body, dict) else str(body or "")
    return HttpAnswer(
        status=exc.status_code, body={"error": {"message": message}}, headers=exc.headers, message=message
    )


COHERE_ERRORS = ExceptionTable(
    answered=(ApiError,),
    read_answer=_answer,
    timeouts=(httpx.TimeoutException,),
    connection=(httpx.TransportError,),
)
