"""The one exception tree of botframework.

Every failure a caller can act on is one of these. SDK and driver errors are translated at the
boundary (``raise XError(...) from exc``) so nothing above a provider or a channel needs to know
which vendor library raised. Messages carry the offending values.

::

    BotframeworkError
    ├── ConfigError                  config file unreadable or invalid; .problems lists each one
    ├── PluginError                  a channel/provider/tool/hook plugin is unknown, claimed twice, or broken
    ├── StorageError                 database unreachable, migration failed
    ├── StartupError                 the server cannot start (port in use, address not ours, ...)
    ├── ChannelError                 a channel adapter's boundary
    │   ├── SignatureError           webhook signature/token check failed -> HTTP 401, no side effect
    │   ├── PayloadError             a vendor payload we cannot parse -> HTTP 400
    │   ├── DeliveryError            the vendor refused or failed to take our reply
    │   ├── MediaError               a channel image could not be fetched (the model gets a note instead)
    │   └── LoginError               a channel's interactive login (``botframework login``) did not complete
    ├── BudgetError                  the context budget engine
    │   └── InputTooLargeError       the protected part (system, input, tool tail) cannot fit: nothing sent
    ├── ModelError                   one model call failed; .kind is an ErrorKind; .usage if reported
    │   ├── RateLimitedError         429; .retry_after seconds when the provider said so
    │   ├── ServerError              5xx, 529 overloaded
    │   ├── ModelTimeoutError        no answer within timeout_s
    │   ├── ModelConnectionError     could not reach the endpoint, or it dropped mid-stream
    │   ├── IncompleteStreamError    the stream ended without a finish reason
    │   ├── AuthError                401/403: bad or missing API key
    │   ├── BillingError             402, insufficient_quota
    │   ├── ModelNotFoundError       404, unknown model
    │   ├── ContextOverflowError     the provider says the prompt is too long; .limit/.requested if stated
    │   ├── BadRequestError          400 the provider will refuse again
    │   └── ContentFilterError       the provider's safety system refused
    ├── AllModelsFailedError         every candidate failed; .attempts holds each ModelError
    ├── ToolError                    a tool could not run (becomes a tool error result, not a crash)
    │   ├── UnknownToolError         the model called a tool that is not enabled
    │   ├── ToolArgumentsError       arguments are not JSON or do not match the schema
    │   ├── ModelCallError           a one-shot model call (ctx.models) got no usable answer; .kind says why
    │   └── McpServerError           an MCP server cannot be started, reached or listed (its tools are left out)
    └── TurnAbortedError             a hook aborted the turn on purpose; .message is shown to the user

Cancelling a turn (the user's ``cancel``, or shutdown) is ``asyncio.CancelledError``, not an error.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botframework.models.base import Usage

__all__ = [
    "AllModelsFailedError",
    "AuthError",
    "BadRequestError",
    "BillingError",
    "BotframeworkError",
    "BudgetError",
    "ChannelError",
    "ConfigError",
    "ConfigProblem",
    "ContentFilterError",
    "ContextOverflowError",
    "DeliveryError",
    "ErrorKind",
    "IncompleteStreamError",
    "InputTooLargeError",
    "LoginError",
    "McpServerError",
    "MediaError",
    "ModelCallError",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelTimeoutError",
    "PayloadError",
    "PluginError",
    "RateLimitedError",
    "ServerError",
    "SignatureError",
    "StartupError",
    "StorageError",
    "ToolArgumentsError",
    "ToolError",
    "TurnAbortedError",
    "UnknownToolError",
    "error_for_kind",
]


class BotframeworkError(Exception):
    """Base of every error botframework raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file: a dotted YAML path (or ``<root>``), a message, a line if known."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path}: {self.message}{where}"


class ConfigError(BotframeworkError):
    """The configuration cannot be used. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("<root>", problems)]
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PluginError(BotframeworkError):
    """A plugin cannot be used: nobody provides it, two distributions claim it, or it is broken.

    ``name`` and ``group`` say which plugin; ``distribution`` which package ships it, when known."""

    def __init__(self, message: str, *, name: str, group: str, distribution: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.group = group
        self.distribution = distribution


class StorageError(BotframeworkError):
    """The database cannot be reached or migrated."""


class StartupError(BotframeworkError):
    """The server cannot start; the message says why and which option to change."""


class ChannelError(BotframeworkError):
    """Raised at a channel adapter's boundary."""


class SignatureError(ChannelError):
    """A webhook failed signature or token verification; the request has no side effect."""


class PayloadError(ChannelError):
    """A vendor payload is malformed or not one we understand."""


class DeliveryError(ChannelError):
    """The vendor API did not accept our reply. ``retryable`` says whether trying later may help;
    ``delivered_parts`` how many parts (chunks) of the reply did go out, so a retry resumes after them;
    ``retry_after_s`` how long the vendor asked us to wait, if it did."""

    def __init__(
        self, message: str, *, retryable: bool = True, delivered_parts: int = 0, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.delivered_parts = delivered_parts
        self.retry_after_s = retry_after_s
        """The vendor's own wait before a retry (a 429's ``retry_after``), when it said so."""


class MediaError(ChannelError):
    """A channel could not fetch an image it referenced (gone, too large, refused, unreachable)."""


class LoginError(ChannelError):
    """A channel's interactive login did not complete (refused, expired too often, timed out)."""


class BudgetError(BotframeworkError):
    """The context budget engine could not build a request."""


class InputTooLargeError(BudgetError):
    """The protected part of the prompt alone does not fit the model's window: nothing is sent."""

    def __init__(self, *, model: str, needed: int, available: int, what: str = "the current input") -> None:
        self.model = model
        self.needed = needed
        self.available = available
        super().__init__(
            f"{what} needs about {needed} tokens but model {model!r} leaves room for {available}; "
            "shorten the message (or use a model with a larger context window)"
        )


class ErrorKind(enum.StrEnum):
    """Why a model call failed. The string values appear in the ledger and in ``usage --json``."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    INCOMPLETE_STREAM = "incomplete_stream"
    AUTH = "auth"
    BILLING = "billing"
    MODEL_NOT_FOUND = "model_not_found"
    CONTEXT_OVERFLOW = "context_overflow"
    BAD_REQUEST = "bad_request"
    CONTENT_FILTER = "content_filter"

    @property
    def retryable(self) -> bool:
        """Worth another attempt on the same model after a backoff."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.INCOMPLETE_STREAM,
    }
)


class ModelError(BotframeworkError):
    """One model call failed. Subclasses fix ``kind``; ``status`` is the HTTP status if any."""

    kind: ErrorKind = ErrorKind.SERVER_ERROR
    retry_after: float | None = None
    """Seconds the provider asked us to wait (Retry-After), when it said so."""
    usage: Usage | None = None
    """Tokens the provider reported before the call failed (a stream that broke after its usage
    event): they are billed, so the ledger keeps them."""

    def __init__(self, message: str, *, model: str = "", status: int | None = None) -> None:
        self.model = model
        self.status = status
        super().__init__(f"[{self.kind.value}] {model + ': ' if model else ''}{message}")
        self.detail = message

    @property
    def retryable(self) -> bool:
        return self.kind.retryable


class RateLimitedError(ModelError):
    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self, message: str, *, model: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, model=model, status=status)
        self.retry_after = retry_after


class ServerError(ModelError):
    kind = ErrorKind.SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        status: int | None = None,
        overloaded: bool = False,
        retry_after: float | None = None,
    ) -> None:
        if overloaded:
            self.kind = ErrorKind.OVERLOADED
        super().__init__(message, model=model, status=status)
        self.retry_after = retry_after


class ModelTimeoutError(ModelError):
    kind = ErrorKind.TIMEOUT


class ModelConnectionError(ModelError):
    kind = ErrorKind.CONNECTION


class IncompleteStreamError(ModelError):
    kind = ErrorKind.INCOMPLETE_STREAM


class AuthError(ModelError):
    kind = ErrorKind.AUTH


class BillingError(ModelError):
    kind = ErrorKind.BILLING


class ModelNotFoundError(ModelError):
    kind = ErrorKind.MODEL_NOT_FOUND


class ContextOverflowError(ModelError):
    """The provider rejected the prompt as too long. ``limit``/``requested`` are parsed when stated."""

    kind = ErrorKind.CONTEXT_OVERFLOW

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        status: int | None = 400,
        limit: int | None = None,
        requested: int | None = None,
    ) -> None:
        super().__init__(message, model=model, status=status)
        self.limit = limit
        self.requested = requested


class BadRequestError(ModelError):
    kind = ErrorKind.BAD_REQUEST


class ContentFilterError(ModelError):
    kind = ErrorKind.CONTENT_FILTER


_BY_KIND: dict[ErrorKind, type[ModelError]] = {
    ErrorKind.RATE_LIMITED: RateLimitedError,
    ErrorKind.SERVER_ERROR: ServerError,
    ErrorKind.TIMEOUT: ModelTimeoutError,
    ErrorKind.CONNECTION: ModelConnectionError,
    ErrorKind.INCOMPLETE_STREAM: IncompleteStreamError,
    ErrorKind.AUTH: AuthError,
    ErrorKind.BILLING: BillingError,
    ErrorKind.MODEL_NOT_FOUND: ModelNotFoundError,
    ErrorKind.CONTEXT_OVERFLOW: ContextOverflowError,
    ErrorKind.BAD_REQUEST: BadRequestError,
    ErrorKind.CONTENT_FILTER: ContentFilterError,
}


def error_for_kind(kind: ErrorKind, message: str, *, model: str = "", status: int | None = None) -> ModelError:
    """Build the ModelError subclass for ``kind`` (used by classifiers and fakes)."""
    if kind is ErrorKind.OVERLOADED:
        return ServerError(message, model=model, status=status, overloaded=True)
    return _BY_KIND[kind](message, model=model, status=status)


class AllModelsFailedError(BotframeworkError):
    """Every candidate model failed. ``attempts`` holds the last error of each candidate, in order."""

    def __init__(self, attempts: Sequence[ModelError]) -> None:
        self.attempts = tuple(attempts)
        summary = "; ".join(str(e) for e in self.attempts) or "no model candidates"
        super().__init__(f"all models failed: {summary}")

    @property
    def last_kind(self) -> ErrorKind | None:
        return self.attempts[-1].kind if self.attempts else None


class ToolError(BotframeworkError):
    """A tool could not run. The loop turns it into an error result the model can correct."""


class UnknownToolError(ToolError):
    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        super().__init__(f"unknown tool {name!r}; available tools: {', '.join(available) or 'none'}")


class ToolArgumentsError(ToolError):
    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"invalid arguments for tool {name!r}: {problem}")


class ModelCallError(ToolError):
    """A one-shot model call made through :class:`botframework.modelcalls.ModelCalls` got no usable
    answer. ``kind`` is ``tier_not_allowed``, ``llm_unavailable``, ``input_too_large`` or
    ``malformed_json``; ``detail`` the cause. A tool may let it propagate: the model gets it as an
    error result."""

    def __init__(self, *, kind: str, detail: str, purpose: str, hint: str = "") -> None:
        self.kind = kind
        self.detail = detail
        self.purpose = purpose
        super().__init__(f"the {purpose} model call failed ({kind}): {detail}" + (f"; {hint}" if hint else ""))


class McpServerError(ToolError):
    """An MCP server could not be started, reached or listed, or its connection broke. The message
    names the server's config path (``mcp_servers.<name>``) and the reason."""


class TurnAbortedError(BotframeworkError):
    """A hook aborted the turn; ``message`` is what the user sees."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)
