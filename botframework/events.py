"""Turn events: what happened during a turn, for logs, metrics and user code.

Subscribers must be quick and must not raise; one that raises is logged and skipped, so an
observer can never break a reply.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botframework.tools.base import ToolContext

__all__ = ["EventBus", "EventKind", "TurnEvent", "log_event"]

log = logging.getLogger("botframework.events")


class EventKind(StrEnum):
    TURN_START = "turn_start"
    TURN_END = "turn_end"
    MODEL_REQUEST = "model_request"
    MODEL_RESPONSE = "model_response"
    TOOL_START = "tool_start"
    TOOL_END = "tool_end"
    TOOL_SKIPPED = "tool_skipped"
    RETRY = "retry"
    FALLBACK = "fallback"
    STEERED = "steered"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class TurnEvent:
    kind: EventKind
    tenant: str
    origin: str
    conversation_id: int | None
    turn_id: str | None
    data: Mapping[str, Any] = field(default_factory=dict)


Subscriber = Callable[[TurnEvent], Awaitable[None] | None]

_LEVELS = {
    EventKind.RETRY: logging.INFO,
    EventKind.FALLBACK: logging.WARNING,
    EventKind.ERROR: logging.WARNING,
    EventKind.STEERED: logging.INFO,
    EventKind.TOOL_SKIPPED: logging.INFO,
}


def log_event(event: TurnEvent) -> None:
    """The default subscriber: every event as one structured log record (fields in ``extra``)."""
    level = _LEVELS.get(event.kind, logging.DEBUG)
    if not log.isEnabledFor(level):
        return
    details = " ".join(f"{k}={v}" for k, v in event.data.items())
    log.log(
        level,
        "%s tenant=%s origin=%s turn=%s %s",
        event.kind.value,
        event.tenant,
        event.origin,
        event.turn_id,
        details,
        extra={
            "event": event.kind.value,
            "tenant": event.tenant,
            "origin": event.origin,
            "turn_id": event.turn_id,
            "event_data": dict(event.data),
        },
    )


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Subscriber:
        self._subscribers.append(fn)
        return fn

    async def publish(self, kind: EventKind, ctx: ToolContext, **data: Any) -> None:
        """Emit an event about the turn ``ctx`` describes."""
        await self.emit(
            TurnEvent(
                kind=kind,
                tenant=ctx.tenant,
                origin=ctx.origin,
                conversation_id=ctx.conversation_id,
                turn_id=ctx.turn_id,
                data=data,
            )
        )

    async def emit(self, event: TurnEvent) -> None:
        for fn in self._subscribers:
            try:
                result = fn(event)
                if result is not None:
                    await result
            except Exception:
                log.exception("event subscriber %r failed on %s", fn, event.kind.value)
