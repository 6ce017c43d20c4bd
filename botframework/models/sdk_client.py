"""The boundary shared by providers built on a vendor SDK: one deadline, one error translation.

A provider subclasses :class:`SdkClient`, sets ``errors`` to its SDK's
:class:`~botframework.models.classify.ExceptionTable` and implements ``_stream`` and ``_once``.
"""

from __future__ import annotations

import asyncio
import json
from abc import abstractmethod
from contextvars import ContextVar
from typing import ClassVar

from botframework.errors import ModelError, ModelTimeoutError, ServerError
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.classify import ExceptionTable, classify_exception

__all__ = ["SdkClient"]

_SEEN: ContextVar[list[Usage] | None] = ContextVar("botframework_usage_seen", default=None)
"""The usage the current call's stream reported so far (a context variable: clients are shared
by concurrent calls, each runs in its own task)."""


class SdkClient(ModelClient):
    """One deadline (``timeout_s``) for the whole call, stream included, and every SDK or transport
    error translated into the error tree at this one place. A call that fails after the provider
    reported usage (:meth:`saw_usage`) raises a ModelError carrying it, for the ledger."""

    errors: ClassVar[ExceptionTable] = ExceptionTable()
    """How this provider's SDK exceptions map to ModelErrors (its ``errors`` module)."""

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        seen: list[Usage] = []
        token = _SEEN.set(seen)
        try:
            return await self._complete(request, on_text)
        except ModelError as exc:
            if seen and exc.usage is None:
                exc.usage = seen[-1]
            raise
        finally:
            _SEEN.reset(token)

    @staticmethod
    def saw_usage(usage: Usage) -> None:
        """Streams call this whenever the provider reports usage, so a stream that breaks later
        still accounts for the tokens it was billed."""
        seen = _SEEN.get()
        if seen is not None:
            seen[:] = [usage]

    async def _complete(self, request: ModelRequest, on_text: TextCallback | None) -> ModelResponse:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                if on_text is not None:
                    return await self._stream(request, on_text)
                return await self._once(request)
        except ModelError:
            raise
        except json.JSONDecodeError as exc:
            raise ServerError(f"malformed response data: {exc}", model=self.name) from exc
        except TimeoutError as exc:
            raise ModelTimeoutError(
                f"no complete answer within timeout_s={self.config.timeout_s:g}", model=self.name
            ) from exc
        except Exception as exc:
            error = classify_exception(exc, model=self.name, timeout_s=self.config.timeout_s, table=self.errors)
            if error is None:
                raise
            raise error from exc

    @abstractmethod
    async def _stream(self, request: ModelRequest, on_text: TextCallback) -> ModelResponse:
        """One streamed call; text goes to ``on_text`` as it arrives."""

    @abstractmethod
    async def _once(self, request: ModelRequest) -> ModelResponse:
        """One non-streamed call."""
