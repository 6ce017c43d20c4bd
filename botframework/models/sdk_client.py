"""The boundary shared by providers built on a vendor SDK: one deadline, one error translation.

A provider subclasses :class:`SdkClient`, sets ``errors`` to its SDK's
:class:`~botframework.models.classify.ExceptionTable` and implements ``_stream`` and ``_once``.
"""

from __future__ import annotations

import asyncio
import json
from abc import abstractmethod
from typing import ClassVar

from botframework.errors import ModelError, ModelTimeoutError, ServerError
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback
from botframework.models.classify import ExceptionTable, classify_exception

__all__ = ["SdkClient"]


class SdkClient(ModelClient):
    """One deadline (``timeout_s``) for the whole call, stream included, and every SDK or transport
    error translated into the error tree at this one place."""

    errors: ClassVar[ExceptionTable] = ExceptionTable()
    """How this provider's SDK exceptions map to ModelErrors (its ``errors`` module)."""

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
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
