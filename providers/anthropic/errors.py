"""The ``anthropic`` SDK's exceptions -> ModelError kinds: the one table of this provider."""

from __future__ import annotations

import anthropic
import httpx
import httpx2

from botframework.models.classify import ExceptionTable, HttpAnswer

__all__ = ["ANTHROPIC_ERRORS"]


def _answer(exc: BaseException) -> HttpAnswer:
    if isinstance(exc, anthropic.APIStatusError):
        return HttpAnswer(
            status=exc.status_code,
            body=exc.body,
            headers=dict(exc.response.headers) if exc.response is not None else None,
            message=exc.message,
        )
    if isinstance(exc, anthropic.APIError):
        return HttpAnswer(status=None, body=exc.body, message=str(exc))
    return HttpAnswer(status=None, message=str(exc))


ANTHROPIC_ERRORS = ExceptionTable(
    answered=(anthropic.APIStatusError,),
    read_answer=_answer,
    timeouts=(anthropic.APITimeoutError, httpx.TimeoutException, httpx2.TimeoutException),
    connection=(anthropic.APIConnectionError, httpx.TransportError, httpx2.TransportError),
    other=(anthropic.APIError,),
)
"""HTTP answers by status and body; timeouts; connection failures and drops (the SDK does not wrap
a transport error raised while a stream is read, hence the httpx types); other SDK errors, such as
an error event inside a stream, by their message."""
