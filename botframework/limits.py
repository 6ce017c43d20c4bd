"""Limits and quotas: what one user, conversation or tenant may cost, with a clear answer when hit.

Two hooks, one call each:

- ``runtime.ingest`` asks :meth:`Limits.admit` before it stores anything. A message that is too long,
  that would queue too deep behind its conversation's open turns, or whose sender or tenant has used
  up the daily token quota, is refused: nothing is stored, and the channel shows the
  :class:`Refusal`'s message to the sender;
- the invocation service calls the model through :meth:`Limits.gate`, a per-tenant semaphore on
  concurrent model calls.

Daily token quotas are read from the ledger (every model call's reported tokens, per UTC day), so
they hold across restarts and across the processes of a deployment; the per-user figure counts the
calls of turns that user's messages started. The semaphore and :class:`RateLimiter` live in
process memory: with several processes each applies its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from botframework.config.schema import Config, LimitsConfig
    from botframework.metrics import Metrics
    from botframework.turn import Turn

__all__ = ["GatedRouter", "Limits", "LimitsStore", "RateLimiter", "Refusal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a message was not accepted: ``kind`` for programs, ``message`` for the person who sent it."""

    kind: str
    """``input_too_long`` | ``queue_full`` | ``quota_exceeded`` | ``rate_limited``."""
    message: str


class LimitsStore(Protocol):
    """What the limits read from storage (``storage.limits`` implements it)."""

    async def open_turns(self, *, tenant: str, channel: str, conversation_key: str) -> int:
        """Turns of the conversation accepted and not finished."""

    async def tokens_today(self, *, tenant: str, channel: str | None = None, user_id: str | None = None) -> int:
        """Input + output tokens of today's (UTC) model calls of the tenant, or of one user's turns."""


class RateLimiter:
    """At most ``limit`` events per key in any ``period_s`` window (sliding log, bounded memory)."""

    def __init__(self, *, limit: int, period_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.period_s = period_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._last_sweep = 0.0

    def allow(self, key: str) -> bool:
        """Record an event for ``key`` and say whether it is within the limit (refused ones are not counted)."""
        now = self._clock()
        if now - self._last_sweep > self.period_s:
            self._sweep(now)
        log = self._events.setdefault(key, deque())
        while log and now - log[0] >= self.period_s:
            log.popleft()
        if len(log) >= self.limit:
            return False
        log.append(now)
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, log in self._events.items() if not log or now - log[-1] >= self.period_s]:
            del self._events[key]


class GatedRouter:
    """A model router seen through one tenant's concurrency limit."""

    def __init__(self, router: Any, slot: Callable[[], Any]) -> None:
        self._router = router
        self._slot = slot

    async def call(self, **kwargs: Any) -> Any:
        async with self._slot():
            return await self._router.call(**kwargs)


class Limits:
    """Every tenant's limits (``tenants.*.limits``), enforced and reported in /metrics."""

    quota_cache_s: float = 2.0
    """Ledger sums are reused this long: a burst of messages costs one query, not one each."""

    def __init__(
        self,
        *,
        config: Config,
        store: LimitsStore,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits: dict[str, LimitsConfig] = {name: t.limits for name, t in config.tenants.items()}
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._semaphores = {
            name: asyncio.Semaphore(lim.max_concurrent_model_calls) for name, lim in self._limits.items()
        }
        self._in_flight = dict.fromkeys(self._limits, 0)
        self._sums: dict[tuple[str, str | None, str | None], tuple[float, int]] = {}
        if metrics is not None:
            for name, lim in self._limits.items():
                for label, value in (
                    ("max_input_chars", lim.max_input_chars),
                    ("max_queued_per_conversation", lim.max_queued_per_conversation),
                    ("max_concurrent_model_calls", lim.max_concurrent_model_calls),
                    ("daily_tokens_per_user", lim.daily_tokens_per_user),
                    ("daily_tokens_per_tenant", lim.daily_tokens_per_tenant),
                ):
                    if value is not None:
                        metrics.limit_value.labels(name, label).set(value)

    def _refuse(self, tenant: str, kind: str, message: str) -> Refusal:
        if self._metrics is not None:
            self._metrics.limit_refusals.labels(tenant, kind).inc()
        return Refusal(kind=kind, message=message)

    def refused(self, tenant: str, refusal: Refusal) -> None:
        """Count a refusal a channel made itself (its own rate limit)."""
        if self._metrics is not None:
            self._metrics.limit_refusals.labels(tenant, refusal.kind).inc()

    async def _tokens_today(self, tenant: str, channel: str | None = None, user_id: str | None = None) -> int:
        key = (tenant, channel, user_id)
        now = self._clock()
        cached = self._sums.get(key)
        if cached is not None and now - cached[0] < self.quota_cache_s:
            return cached[1]
        used = await self._store.tokens_today(tenant=tenant, channel=channel, user_id=user_id)
        if len(self._sums) > 10_000:
            self._sums.clear()
        self._sums[key] = (now, used)
        if user_id is None and self._metrics is not None:
            self._metrics.tokens_today.labels(tenant).set(used)
        return used

    async def admit(self, turn: Turn, *, queue: bool = True) -> Refusal | None:
        """None if ``turn`` may be stored and answered; otherwise why not, for its sender.

        ``queue=False`` leaves out the conversation's queue depth: the caller reads that count in
        the transaction that stores the message and asks :meth:`queue_refusal`.
        """
        lim = self._limits.get(turn.tenant)
        if lim is None:
            return None
        if len(turn.text) > lim.max_input_chars:
            return self._refuse(
                turn.tenant,
                "input_too_long",
                f"Your message is {len(turn.text):,} characters long; the limit is {lim.max_input_chars:,}. "
                "Please send a shorter message.",
            )
        if lim.daily_tokens_per_tenant is not None:
            used = await self._tokens_today(turn.tenant)
            if used >= lim.daily_tokens_per_tenant:
                return self._refuse(
                    turn.tenant,
                    "quota_exceeded",
                    "This assistant has used its model budget for today. Please try again tomorrow (UTC).",
                )
        if lim.daily_tokens_per_user is not None:
            used = await self._tokens_today(turn.tenant, turn.channel, turn.user_id)
            if used >= lim.daily_tokens_per_user:
                return self._refuse(
                    turn.tenant,
                    "quota_exceeded",
                    "You have used your model budget for today. Please try again tomorrow (UTC).",
                )
        if not queue:
            return None
        waiting = await self._store.open_turns(
            tenant=turn.tenant, channel=turn.channel, conversation_key=turn.conversation_key
        )
        return self.queue_refusal(turn, waiting)

    def queue_refusal(self, turn: Turn, waiting: int) -> Refusal | None:
        """None if a conversation with ``waiting`` open turns may take ``turn``; otherwise why not."""
        lim = self._limits.get(turn.tenant)
        if lim is not None and waiting >= lim.max_queued_per_conversation:
            return self._refuse(
                turn.tenant,
                "queue_full",
                f"{waiting} messages of this conversation are still waiting for an answer. "
                "Please wait for them before sending more.",
            )
        return None

    @asynccontextmanager
    async def model_slot(self, tenant: str) -> AsyncIterator[None]:
        """Hold one of the tenant's concurrent model-call slots."""
        semaphore = self._semaphores.get(tenant)
        if semaphore is None:
            yield
            return
        async with semaphore:
            self._in_flight[tenant] += 1
            if self._metrics is not None:
                self._metrics.model_calls_in_flight.labels(tenant).set(self._in_flight[tenant])
            try:
                yield
            finally:
                self._in_flight[tenant] -= 1
                if self._metrics is not None:
                    self._metrics.model_calls_in_flight.labels(tenant).set(self._in_flight[tenant])

    def gate(self, router: Any, tenant: str) -> GatedRouter:
        """``router`` whose ``call`` waits for a slot of ``tenant`` first."""
        return GatedRouter(router, lambda: self.model_slot(tenant))
