"""The contract every channel adapter implements, and what the core gives it.

An adapter only translates: a verified vendor payload becomes a :class:`~botframework.turn.Turn`
handed to :meth:`ChannelRuntime.ingest`; an :class:`Outbound` reply becomes vendor API calls.
Dedupe, persistence, ordering, budgeting, models and retries of delivery live in the core.

Every channel package has the same shape::

    channels/<name>/__init__.py   exports the adapter class
    channels/<name>/adapter.py    ChannelAdapter subclass: routes or connection, deliver()
    channels/<name>/events.py     vendor payload -> Turn (pure functions, tested on recorded fixtures)
    channels/<name>/crypto.py     signature / decryption, when the vendor has any
    channels/<name>/render.py     Reply -> vendor message bodies (dialect + chunking via botframework.render)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from aiohttp import web
from pydantic import BaseModel

from botframework.errors import MediaError
from botframework.turn import Reply, ReplySink, Turn

__all__ = [
    "CHANNEL_ADAPTERS",
    "ChannelAdapter",
    "ChannelRuntime",
    "EventRef",
    "IngestResult",
    "IngestStatus",
    "Outbound",
    "Route",
]


CHANNEL_ADAPTERS: Mapping[str, str] = {
    "websocket": "channels.websocket:WebSocketAdapter",
    "slack": "channels.slack:SlackAdapter",
    "discord": "channels.discord:DiscordAdapter",
    "feishu": "channels.feishu:FeishuAdapter",
    "wecom": "channels.wecom:WeComAdapter",
    "wechat": "channels.wechat:WeChatAdapter",
}
"""Channel name -> adapter class import path. A configurable channel missing here is not shipped yet."""


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    status: IngestStatus
    turn_id: str
    conversation_id: int

    @property
    def duplicate(self) -> bool:
        return self.status is IngestStatus.DUPLICATE


@dataclass(frozen=True, kw_only=True)
class EventRef:
    """One user message a reply answers, with what the adapter stored to reach its sender."""

    event_id: str
    user_id: str
    reply_target: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Outbound:
    """A finished reply to deliver. ``events[0]`` started the turn; later ones were steered into it."""

    tenant: str
    channel: str
    turn_id: str
    conversation_key: str
    reply: Reply
    events: Sequence[EventRef]
    resume_from: int = 0
    """Parts (chunks) an earlier attempt already delivered: skip them, so a retry never repeats text."""

    @property
    def primary(self) -> EventRef:
        return self.events[0]


@dataclass(frozen=True, kw_only=True)
class Route:
    """An HTTP route below ``/t/{tenant}/``; the server resolves the tenant and calls the handler."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]


class ChannelRuntime(Protocol):
    """What the core offers an adapter."""

    async def ingest(self, turn: Turn) -> IngestResult:
        """Dedupe, persist the user message, schedule its processing. Return before the model runs."""

    async def has_conversation(self, tenant: str, channel: str, conversation_key: str) -> bool:
        """Whether the bot already takes part in this conversation (e.g. a Slack thread it answered)."""

    async def transcript(
        self, tenant: str, channel: str, conversation_key: str, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent user/assistant texts of a conversation, oldest first: ``{role, text, event_id}``."""

    def attach_sink(self, tenant: str, channel: str, turn_id: str, sink: ReplySink) -> None:
        """Stream the reply of ``turn_id`` into ``sink`` while it is produced (live channels)."""

    async def redeliver(self, tenant: str, channel: str, conversation_key: str) -> int:
        """Try again to deliver pending replies of a conversation (e.g. a client reconnected)."""

    async def cancel(self, tenant: str, channel: str, event_id: str) -> bool:
        """Cancel the turn answering ``event_id``; False if it already finished."""


class ChannelAdapter(ABC):
    """Base class of every channel adapter; one instance per (tenant, channel)."""

    name: ClassVar[str]
    """The channel's key under ``channels:`` and in routes (``slack``)."""

    def __init__(self, *, tenant: str, config: BaseModel, runtime: ChannelRuntime) -> None:
        self.tenant = tenant
        self.config = config
        self.runtime = runtime

    def routes(self) -> Sequence[Route]:
        """HTTP routes this channel serves under ``/t/{tenant}/``; gateway clients have none."""
        return ()

    async def start(self) -> None:
        """Open outgoing connections (gateway clients, socket mode). Must not block."""
        return None

    async def stop(self) -> None:
        """Close connections; called once at shutdown."""
        return None

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """Bytes and media type of an image this adapter referenced as ``media_ref(name, ref)``
        (one the model provider cannot fetch itself). Raise MediaError when it cannot be had."""
        raise MediaError(f"the {self.name} channel does not serve media (ref {ref!r})")

    @abstractmethod
    async def deliver(self, outbound: Outbound) -> None:
        """Render and send a finished reply. Raise DeliveryError(retryable=...) on failure."""
