"""The model layer: providers behind one contract, error classification, and the fallback router.

Import the SDK providers from their modules (``botframework.models.openai_provider``...) or build
them from config with :func:`build_client`; this package itself stays light (no SDK imports).
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
