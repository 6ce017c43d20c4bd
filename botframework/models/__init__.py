"""The model layer: the provider contract, error classification, and the fallback router.

Providers are plugins (entry point group ``botframework.providers``; the shipped ones live in the
``providers`` package): build one from config with :func:`build_client`. This package names no
provider and imports no vendor SDK.
"""

from botframework.models.base import (
    FinishReason,
    ModelClient,
    ModelRequest,
    ModelResponse,
    TextCallback,
    Usage,
)
from botframework.models.breaker import CircuitBreaker
from botframework.models.finish import normalize_finish_reason
from botframework.models.registry import build_client
from botframework.models.retry import RetryPolicy
from botframework.models.router import (
    AttemptRecord,
    BaseRouterObserver,
    ModelRouter,
    RoutedResponse,
    RouterObserver,
)
from botframework.models.textcalls import TextCallFilter, TextCalls, parse_text_tool_calls

__all__ = [
    "AttemptRecord",
    "BaseRouterObserver",
    "CircuitBreaker",
    "FinishReason",
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "ModelRouter",
    "RetryPolicy",
    "RoutedResponse",
    "RouterObserver",
    "TextCallFilter",
    "TextCallback",
    "TextCalls",
    "Usage",
    "build_client",
    "normalize_finish_reason",
    "parse_text_tool_calls",
]
