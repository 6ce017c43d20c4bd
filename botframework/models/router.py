"""The fallback chain: one logical model call over a list of candidate models, bounded in time.

The router makes *passes* over the candidates (primary, then the agent's ``fallback_models``).
Within a pass, per candidate in order:

- a request is built for it; if the input cannot fit its window (InputTooLargeError from
  ``build``) the candidate is out and the next one is tried, so a fallback with a larger window
  answers what the primary cannot hold;
- retryable kinds (rate_limited, overloaded, server_error, timeout, connection, incomplete_stream)
  are retried at most ``config.max_retries`` times in the pass with :class:`RetryPolicy` backoff;
  a Retry-After longer than the policy's cap moves on to the next candidate at once;
- auth, billing, model_not_found and content_filter put the candidate out for this call (the same
  model refuses the same request again; another provider's policy may differ);
- context_overflow: ``on_overflow`` (the budget engine learns), ``build()`` again, and the SAME
  model is tried once more; a second overflow puts it out;
- bad_request stops the chain: the request is wrong and every model would refuse it.

With a ``deadline`` (the turn's time budget) the router does not give up after one pass: it waits
until the earliest candidate may be called again (its backoff, the provider's Retry-After, the
circuit breaker) and makes another pass, primary first, until the deadline. No call goes to a model
before its Retry-After has passed (the breaker keeps it for every conversation). A model whose
circuit is open is skipped while another candidate can be called; when none can, it gets a forced
half-open trial (see :class:`CircuitBreaker`) instead of failing the turn at once. The caller gets
an error only when the deadline passes or every candidate is out. Without a deadline (background
helpers with their own timeouts) one pass is made.

Each attempt is bounded by the candidate's ``timeout_s`` for the whole call, stream included, and by
the deadline. Text streamed by an attempt that then fails is voided by ``observer.on_reset()``
before the next attempt starts, and before the router raises (a failed call leaves no half answer
behind). The router never runs tools, so a fallback cannot re-run one.
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
    InputTooLargeError,
    ModelError,
    ModelTimeoutError,
    error_for_kind,
)
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.breaker import CircuitBreaker, Permit
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

_OUT_AT_ONCE = frozenset({ErrorKind.AUTH, ErrorKind.BILLING, ErrorKind.MODEL_NOT_FOUND, ErrorKind.CONTENT_FILTER})
_MIN_PASS_WAIT_S = 0.05
"""Between passes the router always yields at least this long, so it can never spin."""
_SETTLE_S = 0.05


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
    """As reported by the provider; for a failed call, what it reported before failing."""
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


@dataclass(slots=True)
class _Candidate:
    """What one router call knows about one candidate."""

    name: str
    attempts: int = 0
    retries: int = 0
    """Retries so far in this call (the backoff exponent)."""
    not_before: float = 0.0
    """This call's own backoff: the candidate is not tried again before it."""
    last: ModelError | None = None
    out: bool = False
    """Failed for good in this call (permanent error, second overflow, input too large)."""
    too_large: InputTooLargeError | None = None
    overflowed: bool = False
    request: ModelRequest | None = None
    """Built once for this candidate; retries resend it, an overflow builds it again."""


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
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` defaults to the breaker's; deadlines passed to :meth:`call` are on it."""
        self.clients = dict(clients)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.policy = policy if policy is not None else RetryPolicy()
        self.clock: Callable[[], float] = clock if clock is not None else self.breaker.clock
        self._sleep = sleep
        self._random = random if random is not None else Random()

    def deadline_in(self, seconds: float) -> float:
        """A deadline ``seconds`` from now on the router's clock, for :meth:`call`."""
        return self.clock() + seconds

    async def call(
        self,
        *,
        candidates: Sequence[str],
        build: RequestBuilder,
        on_overflow: OverflowCallback,
        on_text: TextCallback | None = None,
        observer: RouterObserver | None = None,
        deadline: float | None = None,
    ) -> RoutedResponse:
        """Run one logical call. Raises AllModelsFailedError, BadRequestError, InputTooLargeError (no
        candidate can hold the input) or another BudgetError from build()."""
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
        states = [_Candidate(name=n) for n in names]
        try:
            while True:
                previous: _Candidate | None = None
                for st in states:
                    if st.out:
                        continue
                    if self._ready_at(st) > self.clock():
                        if st.last is None:
                            st.last = self._skipped(st.name)
                        previous = st
                        continue
                    if previous is not None and previous.last is not None:
                        await obs.on_fallback(from_model=previous.name, to_model=st.name, error=previous.last)
                    response = await self._run(
                        st,
                        states=states,
                        build=build,
                        on_overflow=on_overflow,
                        stream=stream,
                        observer=obs,
                        records=records,
                        deadline=deadline,
                    )
                    if response is not None:
                        return RoutedResponse(model_name=st.name, response=response, attempts=tuple(records))
                    previous = st
                await self._wait_for_next_pass(states, deadline, obs, stream)
        except BotframeworkError:
            await self._void(stream, obs)
            raise

    async def _wait_for_next_pass(
        self, states: list[_Candidate], deadline: float | None, observer: RouterObserver, stream: _Stream
    ) -> None:
        """Sleep until the earliest candidate may be tried again; raise when that is never, or too late."""
        live = [st for st in states if not st.out]
        if not live or deadline is None:
            raise self._exhausted(states)
        now = self.clock()
        ready = {st.name: self._ready_at(st) for st in live}
        first = min(live, key=lambda st: ready[st.name])
        wake = max(ready[first.name], now + _MIN_PASS_WAIT_S)
        if wake >= deadline:
            raise self._exhausted(states)
        await self._void(stream, observer)
        error = first.last if first.last is not None else self._skipped(first.name)
        await observer.on_retry(model_name=first.name, attempt=first.attempts, error=error, delay_s=wake - now)
        await self._sleep(wake - now)

    @staticmethod
    def _exhausted(states: list[_Candidate]) -> BotframeworkError:
        errors = [st.last for st in states if st.last is not None]
        if not errors:
            too_large = [st.too_large for st in states if st.too_large is not None]
            if too_large:
                return too_large[0]
        return AllModelsFailedError(errors)

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
        wait = self.breaker.retry_in(name)
        if wait > 0:
            why = f"the provider asked to wait {wait:.1f}s more (Retry-After)"
        else:
            why = (
                f"circuit open after {self.breaker.consecutive_failures(name)} consecutive failures, "
                f"next trial in {self.breaker.remaining_s(name):.0f}s"
            )
        return error_for_kind(
            kind, f"skipped: {why}{reason}", model=name, status=last.status if last is not None else None
        )

    def _ready_at(self, st: _Candidate) -> float:
        """When this call may try the candidate again. A circuit that is not closed is paced by the
        breaker (shared by every call: one trial at a time, so a dead model gets one probe per
        interval, not one per call, and a recovered one is noticed at once); a closed one by this
        call's backoff. The provider's Retry-After holds in both."""
        breaker_ready = self.clock() + self.breaker.wait_s(st.name)
        if self.breaker.state(st.name) != "closed":
            return breaker_ready
        return max(st.not_before, breaker_ready)

    def _callable_now(self, st: _Candidate, now: float) -> bool:
        return not st.out and self._ready_at(st) <= now and self.breaker.available(st.name)

    def _permit(self, st: _Candidate, states: list[_Candidate]) -> Permit | None:
        permit = self.breaker.allow(st.name)
        if permit is not None:
            return permit
        now = self.clock()
        if any(other is not st and self._callable_now(other, now) for other in states):
            return None
        return self.breaker.allow(st.name, force=True)

    async def _run(
        self,
        st: _Candidate,
        *,
        states: list[_Candidate],
        build: RequestBuilder,
        on_overflow: OverflowCallback,
        stream: _Stream,
        observer: RouterObserver,
        records: list[AttemptRecord],
        deadline: float | None,
    ) -> ModelResponse | None:
        """One candidate's turn in a pass: the response, or None (state updated in ``st``)."""
        client = self.clients[st.name]
        retries_this_pass = 0
        while True:
            if deadline is not None and self.clock() >= deadline:
                if st.last is None:
                    st.last = ModelTimeoutError(
                        "the turn's time budget ran out before this model was tried", model=st.name
                    )
                return None
            permit = self._permit(st, states)
            if permit is None:
                if st.last is None or not st.attempts:
                    st.last = self._skipped(st.name)
                return None
            if st.request is None:
                try:
                    st.request = await build(st.name)
                except InputTooLargeError as exc:
                    self.breaker.release(st.name, permit)
                    st.too_large, st.out = exc, True
                    return None
                except BaseException:
                    self.breaker.release(st.name, permit)
                    raise
            request = st.request
            st.attempts += 1
            await self._void(stream, observer)
            started = time.monotonic()
            error: ModelError
            cut_short = False
            try:
                response = await self._attempt(client, request, stream, deadline)
            except _DeadlineReached as exc:
                self.breaker.release(st.name, permit)
                error, cut_short = exc.error, True
            except ModelError as exc:
                error = exc
                self.breaker.record_failure(st.name, error, permit)
            except BaseException:
                self.breaker.release(st.name, permit)
                raise
            else:
                self.breaker.record_success(st.name)
                record = AttemptRecord(
                    model_name=st.name,
                    provider_model=response.model or client.config.model,
                    attempt=st.attempts,
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
                error.model = st.name
            if not (cut_short and st.last is not None):
                st.last = error  # what the model itself last said is the better reason to give the user
            record = AttemptRecord(
                model_name=st.name,
                provider_model=client.config.model,
                attempt=st.attempts,
                outcome=error.kind.value,
                error=error,
                usage=error.usage if error.usage is not None else Usage(),
                latency_ms=_ms_since(started),
                estimated_prompt_tokens=request.estimated_prompt_tokens,
            )
            records.append(record)
            await observer.on_attempt(record)

            if isinstance(error, BadRequestError):
                raise error
            if isinstance(error, ContextOverflowError):
                if st.overflowed:
                    st.out = True
                    return None
                st.overflowed = True
                await on_overflow(st.name, error, request)
                st.request = None  # built again, to what the budget engine just learned
                continue
            if error.kind in _OUT_AT_ONCE or not error.retryable:
                st.out = True
                return None
            delay = self.policy.delay(st.retries, error, self._random)
            st.retries += 1
            pause = delay if delay is not None else (error.retry_after or self.policy.max_delay_s)
            st.not_before = self.clock() + pause
            if delay is None or retries_this_pass >= client.config.max_retries:
                return None
            if self.breaker.state(st.name) != "closed":
                return None  # the circuit opened: the breaker paces the next try, not this backoff
            if deadline is not None and st.not_before >= deadline:
                return None
            retries_this_pass += 1
            await observer.on_retry(model_name=st.name, attempt=st.attempts, error=error, delay_s=delay)
            await self._sleep(delay)
            rest = self.breaker.retry_in(st.name)
            if 0 < rest <= _SETTLE_S:
                await self._sleep(rest)  # a timer may fire a hair early: never call before Retry-After

    async def _attempt(
        self, client: ModelClient, request: ModelRequest, stream: _Stream, deadline: float | None
    ) -> ModelResponse:
        timeout_s = client.config.timeout_s
        left = deadline - self.clock() if deadline is not None else timeout_s
        bound = min(timeout_s, max(left, 0.0))
        try:
            async with asyncio.timeout(bound):
                return await client.complete(request, on_text=stream if stream.on_text is not None else None)
        except TimeoutError as exc:
            if bound < timeout_s:
                raise _DeadlineReached(
                    ModelTimeoutError(
                        f"no complete answer within the {bound:.1f}s left of the turn's time budget",
                        model=client.name,
                    )
                ) from exc
            raise ModelTimeoutError(f"no complete answer within timeout_s={timeout_s:g}", model=client.name) from exc


class _DeadlineReached(Exception):
    """An attempt cut short by the caller's deadline: not the model's fault, so not a breaker failure."""

    def __init__(self, error: ModelTimeoutError) -> None:
        super().__init__(str(error))
        self.error = error


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
