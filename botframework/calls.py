"""What happens around every real model call of a turn: the router's observer.

One ledger row per attempt (a failed one keeps the usage the provider reported before failing),
calibration from provider-reported usage, metrics (through the ledger writer), turn events,
resetting the live stream when a retry or fallback restarts, and telling the user once that the
answer is being retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from botframework.budget import BudgetEngine
from botframework.config.schema import ModelConfig
from botframework.errors import ModelError
from botframework.events import EventBus, EventKind
from botframework.ledger import LedgerWriter
from botframework.models.router import AttemptRecord
from botframework.tools.base import ToolContext

__all__ = ["CallRecorder"]


class CallRecorder:
    """A ``RouterObserver`` for the calls of one turn (or of one helper job: ``purpose``)."""

    def __init__(
        self,
        *,
        budget: BudgetEngine,
        ledger: LedgerWriter,
        events: EventBus,
        models: Mapping[str, ModelConfig],
        ctx: ToolContext,
        on_reset: Callable[[], Awaitable[None]] | None = None,
        on_retrying: Callable[[], Awaitable[None]] | None = None,
        purpose: str = "turn",
    ) -> None:
        self.budget = budget
        self.ledger = ledger
        self.events = events
        self.models = models
        self.ctx = ctx
        self._on_reset = on_reset
        self._on_retrying = on_retrying
        self.purpose = purpose
        self.input_tokens = 0
        self.output_tokens = 0
        """Usage summed over the successful calls, for the Reply."""

    async def on_attempt(self, record: AttemptRecord) -> None:
        if record.outcome == "ok":
            self.input_tokens += record.usage.input_tokens
            self.output_tokens += record.usage.output_tokens
            if record.usage.input_tokens > 0 and record.estimated_prompt_tokens > 0:
                self.budget.observe_usage(
                    model_name=record.model_name,
                    model=self.models[record.model_name],
                    estimated_prompt_tokens=record.estimated_prompt_tokens,
                    reported_input_tokens=record.usage.input_tokens,
                )
        await self.ledger.record(
            record,
            tenant=self.ctx.tenant,
            origin=self.ctx.origin,
            conversation_id=self.ctx.conversation_id,
            turn_id=self.ctx.turn_id,
            purpose=self.purpose,
        )
        await self.events.publish(
            EventKind.MODEL_RESPONSE if record.outcome == "ok" else EventKind.ERROR,
            self.ctx,
            model=record.model_name,
            purpose=self.purpose,
            attempt=record.attempt,
            outcome=record.outcome,
            latency_ms=record.latency_ms,
            input_tokens=record.usage.input_tokens,
            output_tokens=record.usage.output_tokens,
        )

    async def on_retry(self, *, model_name: str, attempt: int, error: ModelError, delay_s: float) -> None:
        await self.events.publish(
            EventKind.RETRY, self.ctx, model=model_name, attempt=attempt, error_kind=error.kind.value, delay_s=delay_s
        )
        if self._on_retrying is not None:
            await self._on_retrying()

    async def on_fallback(self, *, from_model: str, to_model: str, error: ModelError) -> None:
        await self.events.publish(
            EventKind.FALLBACK, self.ctx, from_model=from_model, to_model=to_model, error_kind=error.kind.value
        )
        if self._on_retrying is not None:
            await self._on_retrying()

    async def on_reset(self) -> None:
        if self._on_reset is not None:
            await self._on_reset()
