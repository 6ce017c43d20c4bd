"""What crosses the line between a channel and the core: an inbound ``Turn`` and an outbound ``Reply``.

Adapters only translate: vendor payload -> ``Turn``; ``Reply`` -> vendor API calls. Everything in
between (dedupe, persistence, budgeting, models, tools) lives once, in the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from botframework.errors import ErrorKind
from botframework.inputs import clean_text
from botframework.messages import ImagePart
from botframework.states import TurnFailure

__all__ = ["NullSink", "Origin", "Reply", "ReplySink", "ReplyTarget", "Turn"]


class ReplyTarget(BaseModel):
    """Where a reply goes, typed per channel (a Slack channel and thread, a Discord message...).

    A channel subclasses it with the fields its ``deliver`` needs and hands an instance to ``Turn``.
    It is stored as JSON with the inbound event, so a restart can still deliver; keys a later version
    no longer knows are ignored when it is read back.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    def __str__(self) -> str:
        """``channel=C0123 thread_ts=1712.5``: what error messages quote."""
        return " ".join(f"{k}={v}" for k, v in self.model_dump().items() if v not in (None, ""))


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One inbound user message, channel-neutral.

    ``event_id`` is the vendor's id for dedupe within (tenant, channel). ``conversation_key`` names
    the conversation inside the channel (a DM, a Slack thread, a WebSocket user).
    ``reply_target`` is whatever the adapter needs later to deliver the reply (channel id,
    thread ts, message id): a :class:`ReplyTarget` of the channel, or a JSON-serializable mapping.
    It is persisted (as a mapping), so a restart can still deliver.
    """

    tenant: str
    channel: str
    event_id: str
    conversation_key: str
    user_id: str
    text: str
    images: tuple[ImagePart, ...] = ()
    reply_target: Mapping[str, Any] | ReplyTarget = field(default_factory=dict)
    received_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if isinstance(self.reply_target, ReplyTarget):
            object.__setattr__(self, "reply_target", self.reply_target.model_dump(mode="json"))
        # Whatever a channel parsed, what is stored must be encodable: repair lone surrogates here,
        # once for every channel, so no stored row can break a history replay later.
        for name in ("event_id", "conversation_key", "user_id", "text"):
            object.__setattr__(self, name, clean_text(getattr(self, name)))
        object.__setattr__(self, "reply_target", _clean(self.reply_target))

    @property
    def target(self) -> Mapping[str, Any]:
        """``reply_target`` as the mapping that is stored."""
        target = self.reply_target
        assert not isinstance(target, ReplyTarget)  # converted in __post_init__
        return target


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Who started a turn: a channel, or a background job that is not pretending to be one."""

    kind: str  # "channel" | "background"
    name: str  # the channel plugin's name, or the job's ("scheduler", "agent:planner")

    @classmethod
    def channel(cls, name: str) -> Origin:
        return cls(kind="channel", name=name)

    @classmethod
    def background(cls, name: str) -> Origin:
        return cls(kind="background", name=name)

    @classmethod
    def from_label(cls, label: str) -> Origin:
        kind, sep, name = label.partition(":")
        return cls(kind="background", name=name) if sep and kind == "background" else cls(kind="channel", name=label)

    @property
    def label(self) -> str:
        """Stored in the ledger: the channel name, or ``background:<name>``."""
        return self.name if self.kind == "channel" else f"background:{self.name}"


@dataclass(frozen=True, kw_only=True)
class Reply:
    """The answer to a turn. ``error_kind`` is set when ``text`` is an error message for the user."""

    text: str
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    error_kind: ErrorKind | TurnFailure | None = None

    @staticmethod
    def kind_from(value: str | None) -> ErrorKind | TurnFailure | None:
        """A stored error kind back as its enum (an unknown one, from a newer version, as INTERNAL)."""
        if value is None:
            return None
        if value in ErrorKind.__members__.values():
            return ErrorKind(value)
        if value in TurnFailure.__members__.values():
            return TurnFailure(value)
        return TurnFailure.INTERNAL

    @property
    def is_error(self) -> bool:
        return self.error_kind is not None


class ReplySink(Protocol):
    """Receives a reply while it is produced (live channels stream it; others ignore it)."""

    async def delta(self, text: str) -> None:
        """New text, appended to what was sent before."""

    async def reset(self) -> None:
        """Discard what was streamed so far: a retry or a fallback starts the answer again."""

    async def notice(self, text: str) -> None:
        """A transient status for the user, not part of the reply (``retrying…`` once per turn while
        the models are retried): show it until the next delta, or ignore it. Optional: a sink
        without it (one written before it existed) still works."""


class NullSink:
    """A sink that drops everything (background jobs, channels without live updates)."""

    async def delta(self, text: str) -> None:
        return None

    async def reset(self) -> None:
        return None

    async def notice(self, text: str) -> None:
        return None
