"""The fallback chain: one logical model call over a list of candidate models.

Rules, per candidate in order (primary, then the agent's ``fallback_models``):

- a candidate whose circuit is open is skipped without a call (its last error is reported);
- retryable kinds (rate_limited, overloaded, server_error, timeout, connection, incomplete_stream)
  are retried at most ``config.max_retries`` times with :class:`RetryPolicy` backoff; a
  Retry-After longer than the policy's cap moves on to the next candidate at once;
- auth, billing and model_not_found move on at once;
- context_overflow: ``on_overflow`` (the budget engine learns), ``build()`` again, and the SAME
  model is tried once more; this is neither a retry nor a fallback. A second overflow moves on;
- content_filter moves on at once without a retry: the same model refuses the same prompt again,
  another provider's policy may differ. If every candidate refuses, the caller gets
  AllModelsFailedError whose ``last_kind`` is content_filter;
- bad_request stops the chain: the request is wrong and every model would refuse it.

Each attempt is bounded by the candidate's ``timeout_s`` for the whole call, stream included.
Text streamed by an attempt that then fails is voided by ``observer.on_reset()`` before the next
attempt starts, and before the router raises (a failed call leaves no half answer behind).
The router never runs tools, so a fallback cannot re-run one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Protocol

from botframework.errors import (
    AllModelsFailedError,
    BadRequestError,
    BotframeworkError,
    ConfigError,
    ContextOverflowError,
    ErrorKind,
    ModelError,
    ModelTimeoutError,
    error_for_kind,
)
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.breaker import CircuitBreaker
from botframework.models.retry import RetryPolicy

__all__ = [
    "AttemptRecord",
    "BaseRouterObserver",
    "ModelRouter",
    "OverflowCallback",
    "RequestBuilder",
    "RoutedResponse",
    "RouterObserver",
]

RequestBuilder = Callable[[str], Awaitable[ModelRequest]]
OverflowCallback = Callable[[str, ContextOverflowError, ModelRequest], Awaitable[None]]

_MOVE_ON_AT_ONCE = frozenset({ErrorKind.AUTH, ErrorKind.BILLING, ErrorKind.MODEL_NOT_FOUND, ErrorKind.CONTENT_FILTER})


@dataclass(frozen=True, kw_only=True)
class AttemptRecord:
    """One real model call, for the ledger and metrics (failed calls included)."""

    model_name: str
    """The configured name (a key of ``models:``)."""
    provider_model: str
    """The provider's model id (as reported on success, as configured otherwise)."""
    attempt: int
    """1-based number of this call to this model within one router call."""
    outcome: str
    """``ok`` or the ErrorKind value."""
    error: ModelError | None
    usage: Usage
    latency_ms: int
    estimated_prompt_tokens: int


@dataclass(frozen=True, kw_only=True)
class RoutedResponse:
    model_name: str
    response: ModelResponse
    attempts: tuple[AttemptRecord, ...] = field(default=())
    """Every real call this routing made, in order, the successful one last."""


class RouterObserver(Protocol):
    async def on_attempt(self, record: AttemptRecord) -> None: ...

    async def on_retry(self, *, model_name: str, attempt: int, error: ModelError, delay_s: float) -> None: ...

    async def on_fallback(self, *, from_model: str, to_model: str, error: ModelError) -> None: ...

    async def on_reset(self) -> None: ...


class BaseRouterObserver:
    """No-op observer; subclass and override what you need."""

    async def on_attempt(self, record: AttemptRecord) -> None:
        return None

    async def on_retry(self, *, model_name: str, attempt: int, error: ModelError, delay_s: float) -> None:
        return None

    async def on_fallback(self, *, from_model: str, to_model: str, error: ModelError) -> None:
        return None

    async def on_reset(self) -> None:
        return None


_NULL_OBSERVER = BaseRouterObserver()


class _Stream:
    """Forwards text and remembers whether anything reached the caller since the last reset."""

    def __init__(self, on_text: TextCallback | None) -> None:
        self.on_text = on_text
        self.dirty = False

    async def __call__(self, text: str) -> None:
        if text and self.on_text is not None:
            self.dirty = True
            await self.on_text(text)


class ModelRouter:
    """Shared by all conversations; holds the clients and the circuit breaker, no per-call state."""

    def __init__(
        self,
        *,
        clients: Mapping[str, ModelClient],
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Random | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.clients = dict(clients)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.policy = policy if policy is not None else RetryPolicy()
        self._sleep = sleep
        self._random = random if random is not None else Random()

    async def call(
        self,
        *,
        candidates: Sequence[str],
        build: RequestBuilder,
        on_overflow: OverflowCallback,
        on_text: TextCallback | None = None,
        observer: RouterObserver | None = None,
    ) -> RoutedResponse:
        """Run one logical call. Raises AllModelsFailedError, BadRequestError, or BudgetError from build()."""
        obs: RouterObserver = observer if observer is not None else _NULL_OBSERVER
        names = list(dict.fromkeys(candidates))
        unknown = [n for n in names if n not in self.clients]
        if unknown:
            raise ConfigError(
                f"unknown model(s) {', '.join(map(repr, unknown))}; "
                f"configured: {', '.join(sorted(self.clients)) or 'none'}"
            )
        stream = _Stream(on_text)
        records: list[AttemptRecord] = []
        failures: list[ModelError] = []
        for index, name in enumerate(names):
            if index > 0:
                await obs.on_fallback(from_model=names[index - 1], to_model=name, error=failures[-1])
            try:
                outcome = await self._try_model(
                    name, build=build, on_overflow=on_overflow, stream=stream, observer=obs, records=records
                )
            except BotframeworkError:
                await self._void(stream, obs)
                raise
            if isinstance(outcome, ModelResponse):
                return RoutedResponse(model_name=name, response=outcome, attempts=tuple(records))
            failures.append(outcome)
        await self._void(stream, obs)
        raise AllModelsFailedError(failures)

    @staticmethod
    async def _void(stream: _Stream, observer: RouterObserver) -> None:
        """Text streamed by a call that then failed is not an answer: tell the caller to drop it."""
        if stream.dirty:
            stream.dirty = False
            await observer.on_reset()

    def _skipped(self, name: str) -> ModelError:
        last = self.breaker.last_error(name)
        kind = last.kind if last is not None else ErrorKind.SERVER_ERROR
        reason = f" (last: {last.detail})" if last is not None else ""
        return error_for_kind(
            kind,
            f"skipped: circuit open after {self.breaker.consecutive_failures(name)} consecutive failures, "
            f"next trial in {self.breaker.remaining_s(name):.0f}s{reason}",
            model=name,
            status=last.status if last is not None else None,
        )

    async def _try_model(
        self,
        name: str,
        *,
        build: RequestBuilder,
        on_overflow: OverflowCallback,
        stream: _Stream,
        observer: RouterObserver,
        records: list[AttemptRecord],
    ) -> ModelResponse | ModelError:
        """The response, or the error that ends this candidate (bad_request is raised)."""
        client = self.clients[name]
        permit = self.breaker.allow(name)
        if permit is None:
            return self._skipped(name)
        try:
            request = await build(name)
        except BaseException:
            self.breaker.release(name, permit)
            raise
        retries = 0
        overflowed = False
        attempt = 0
        while True:
            attempt += 1
            await self._void(stream, observer)
            started = time.monotonic()
            error: ModelError
            try:
                response = await self._attempt(client, request, stream)
            except ModelError as exc:
                error = exc
            except BaseException:
                self.breaker.release(name, permit)
                raise
            else:
                self.breaker.record_success(name)
                record = AttemptRecord(
                    model_name=name,
                    provider_model=response.model or client.config.model,
                    attempt=attempt,
                    outcome="ok",
                    error=None,
                    usage=response.usage,
                    latency_ms=_ms_since(started),
                    estimated_prompt_tokens=request.estimated_prompt_tokens,
                )
                records.append(record)
                await observer.on_attempt(record)
                return response
            if not error.model:
                error.model = name
            self.breaker.record_failure(name, error, permit)
            record = AttemptRecord(
                model_name=name,
                provider_model=client.config.model,
                attempt=attempt,
                outcome=error.kind.value,
                error=error,
                usage=Usage(),
                latency_ms=_ms_since(started),
                estimated_prompt_tokens=request.estimated_prompt_tokens,
            )
            records.append(record)
            await observer.on_attempt(record)

            if isinstance(error, BadRequestError):
                raise error
            if isinstance(error, ContextOverflowError):
                if overflowed:
                    return error
                overflowed = True
                await on_overflow(name, error, request)
                permit = self.breaker.allow(name)
                if permit is None:
                    return self._skipped(name)
                try:
                    request = await build(name)
                except BaseException:
                    self.breaker.release(name, permit)
                    raise
                continue
            if error.kind in _MOVE_ON_AT_ONCE or not error.retryable:
                return error
            if retries >= client.config.max_retries:
                return error
            delay = self.policy.delay(retries, error, self._random)
            if delay is None:
                return error
            retries += 1
            await observer.on_retry(model_name=name, attempt=attempt, error=error, delay_s=delay)
            await self._sleep(delay)
            permit = self.breaker.allow(name)
            if permit is None:
                return self._skipped(name)

    @staticmethod
    async def _attempt(client: ModelClient, request: ModelRequest, stream: _Stream) -> ModelResponse:
        timeout_s = client.config.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await client.complete(request, on_text=stream if stream.on_text is not None else None)
        except TimeoutError as exc:
            raise ModelTimeoutError(f"no complete answer within timeout_s={timeout_s:g}", model=client.name) from exc


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
